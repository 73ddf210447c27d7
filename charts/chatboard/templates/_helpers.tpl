{{/* Names, labels and the pieces every Deployment shares. */}}

{{- define "chatboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-chatboard, or the release name alone when it already contains the chart name. */}}
{{- define "chatboard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "chatboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chatboard.labels" -}}
helm.sh/chart: {{ include "chatboard.chart" . }}
app.kubernetes.io/name: {{ include "chatboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chatboard
{{- end -}}

{{/* Labels of one component; call with (dict "root" $ "component" "gateway"). */}}
{{- define "chatboard.componentLabels" -}}
{{ include "chatboard.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "chatboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatboard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "chatboard.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "chatboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chatboard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* The operator's own account, never the namespace's `default`: its Role reads and writes
Secrets, which every pod running as `default` would then be able to as well. */ -}}
{{- define "chatboard.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "chatboard.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else if .Values.operator.serviceAccount.name -}}
{{- .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- fail "operator.serviceAccount.create=false needs operator.serviceAccount.name: the operator's Role (Secrets included) would otherwise be bound to the namespace's default ServiceAccount" -}}
{{- end -}}
{{- end -}}

{{- /*
The namespaces the operator watches, as a JSON list: operator.watchNamespaces, else the release's
namespace; ["*"] means every namespace.
*/}}
{{- define "chatboard.operatorNamespaces" -}}
{{- $namespaces := .Values.operator.watchNamespaces | default (list .Release.Namespace) | uniq -}}
{{- if and (has "*" $namespaces) (gt (len $namespaces) 1) -}}
{{- fail "operator.watchNamespaces: \"*\" (every namespace) cannot be listed with other namespaces" -}}
{{- end -}}
{{- toJson $namespaces -}}
{{- end -}}

{{- define "chatboard.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- printf "https://%s" (first .Values.ingress.hosts) -}}
{{- end -}}
{{- end -}}

{{/* The chart's Secret holding the sensitive settings given inline. */}}
{{- define "chatboard.secretName" -}}
{{- printf "%s-secrets" (include "chatboard.fullname" .) -}}
{{- end -}}

{{/*
One env entry read from a Secret: the user's existing Secret when named, else the chart's.
Call with (dict "name" "DATABASE_URL" "existing" .Values.database.existingSecret "key" "DATABASE_URL" "root" $).
*/}}
{{- define "chatboard.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
{{- if .existing.name }}
      name: {{ .existing.name }}
      key: {{ .existingKey | default .existing.key }}
{{- else }}
      name: {{ include "chatboard.secretName" .root }}
      key: {{ .name }}
{{- end }}
{{- end -}}

{{/* Is an SMTP URL configured (inline or from a Secret)? */}}
{{- define "chatboard.smtpEnabled" -}}
{{- if or .Values.email.smtpUrl .Values.email.existingSecret.name -}}true{{- end -}}
{{- end -}}

{{/* Are S3 credentials configured? */}}
{{- define "chatboard.s3Enabled" -}}
{{- if .Values.uploads.s3.bucket -}}true{{- end -}}
{{- end -}}

{{/* Secret-backed env entries, one define per setting, so each service gets only what it needs. */}}
{{- define "chatboard.env.database" -}}
{{ include "chatboard.secretEnv" (dict "name" "DATABASE_URL" "existing" .Values.database.existingSecret "root" .) }}
{{- end -}}

{{- define "chatboard.env.nats" -}}
{{ include "chatboard.secretEnv" (dict "name" "NATS_URL" "existing" .Values.nats.existingSecret "root" .) }}
{{- end -}}

{{- define "chatboard.env.jwt" -}}
{{ include "chatboard.secretEnv" (dict "name" "CHATBOARD_JWT_SECRET" "existing" .Values.auth.existingSecret "root" .) }}
{{- if .Values.auth.existingSecret.name }}
{{- with .Values.auth.existingSecret.previousKey }}
{{ include "chatboard.secretEnv" (dict "name" "CHATBOARD_JWT_SECRET_PREVIOUS" "existing" $.Values.auth.existingSecret "existingKey" . "root" $) }}
{{- end }}
{{- else if .Values.auth.previousJwtSecret }}
{{ include "chatboard.secretEnv" (dict "name" "CHATBOARD_JWT_SECRET_PREVIOUS" "existing" (dict) "root" .) }}
{{- end }}
{{- end -}}

{{- define "chatboard.env.smtp" -}}
{{- if include "chatboard.smtpEnabled" . -}}
{{ include "chatboard.secretEnv" (dict "name" "CHATBOARD_SMTP_URL" "existing" .Values.email.existingSecret "root" .) }}
{{- end -}}
{{- end -}}

{{- define "chatboard.env.s3" -}}
{{- if include "chatboard.s3Enabled" . -}}
{{ include "chatboard.secretEnv" (dict "name" "CHATBOARD_S3_ACCESS_KEY_ID" "existing" .Values.uploads.s3.existingSecret "existingKey" .Values.uploads.s3.existingSecret.accessKeyIdKey "root" .) }}
{{ include "chatboard.secretEnv" (dict "name" "CHATBOARD_S3_SECRET_ACCESS_KEY" "existing" .Values.uploads.s3.existingSecret "existingKey" .Values.uploads.s3.existingSecret.secretAccessKeyKey "root" .) }}
{{- end -}}
{{- end -}}

{{/* The shared upload volume (only without S3). */}}
{{- define "chatboard.uploadVolume" -}}
{{- if and .Values.uploads.existingClaim (not .Values.uploads.s3.bucket) -}}
- name: uploads
  persistentVolumeClaim:
    claimName: {{ .Values.uploads.existingClaim }}
{{- end -}}
{{- end -}}

{{- define "chatboard.uploadMount" -}}
{{- if and .Values.uploads.existingClaim (not .Values.uploads.s3.bucket) -}}
- name: uploads
  mountPath: /var/lib/chatboard/uploads
{{- end -}}
{{- end -}}

{{/* Topology spread constraints for one component; call with (dict "root" $ "component" "x"). */}}
{{- define "chatboard.topologySpread" -}}
{{- if .root.Values.topologySpread.enabled -}}
topologySpreadConstraints:
{{- range .root.Values.topologySpread.topologyKeys }}
  - maxSkew: {{ $.root.Values.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "chatboard.selectorLabels" $ | nindent 8 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The Deployment of one service. Call with (dict "root" $ "component" "gateway" "values" .Values.gateway
"serviceAccount" "name" "env" (list of extra env yaml string) "volumes" string "mounts" string
"recreate" bool: replace pods instead of rolling, for a service that must not run twice).
*/}}
{{- define "chatboard.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "chatboard.fullname" $root }}-{{ .component }}
  labels:
    {{- include "chatboard.componentLabels" . | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "chatboard.selectorLabels" . | nindent 6 }}
  strategy:
    {{- if .recreate }}
    # The old pod goes before the new one starts: these pods must never run two at once.
    type: Recreate
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
    {{- end }}
  template:
    metadata:
      labels:
        {{- include "chatboard.selectorLabels" . | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- /* Without the generated signing key, which is new at every render without a cluster
        to read it back from (install, `helm template`): the first upgrade rolled every pod. */}}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") (merge (dict "ChecksumOnly" true) $root) | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ .serviceAccount }}
      automountServiceAccountToken: {{ .needsKubeApi | default false }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- with (include "chatboard.topologySpread" .) }}
      {{- . | nindent 6 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "chatboard.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ .binary | quote }}]
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ $v.port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "chatboard.fullname" $root }}-config
            {{- with $root.Values.extraEnvFrom }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            - name: CHATBOARD_ADDR
              value: "0.0.0.0:{{ $v.port }}"
            - name: CHATBOARD_DB_MAX_CONNECTIONS
              value: {{ $v.dbMaxConnections | int64 | quote }}
            - name: RUST_LOG
              value: {{ default $root.Values.logLevel $v.logLevel | quote }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $root.Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet: {path: /health/live, port: http}
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: {path: /health/live, port: http}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /health/ready, port: http}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          {{- if and $v.preStopSleepSeconds (semverCompare ">=1.30-0" $root.Capabilities.KubeVersion.Version) }}
          {{- /* Keep serving while endpoints and the ingress drop this pod, then take SIGTERM.
               The sleep action needs Kubernetes 1.30; the image has no shell to run sleep in. */}}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ int $v.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          volumeMounts:
            # The root filesystem is read-only; temporary files (upload staging) go here.
            - name: tmp
              mountPath: /tmp
            {{- with .mounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with (default $root.Values.nodeSelector $v.nodeSelector) }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $root.Values.tolerations $v.tolerations) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $root.Values.affinity $v.affinity) }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* A ClusterIP Service for one component's HTTP port. */}}
{{- define "chatboard.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "chatboard.fullname" .root }}-{{ .component }}
  labels:
    {{- include "chatboard.componentLabels" . | nindent 4 }}
  {{- with .values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .values.service.type }}
  selector:
    {{- include "chatboard.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .values.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{/* A PodDisruptionBudget for one component. */}}
{{- define "chatboard.pdb" -}}
{{- if .values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "chatboard.fullname" .root }}-{{ .component }}
  labels:
    {{- include "chatboard.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  {{- if semverCompare ">=1.27.0-0" .root.Capabilities.KubeVersion.Version }}
  # A pod that is not Ready (every one of them, while the database is away) may still be
  # evicted: with the default policy a node drain would wait for the database to come back.
  unhealthyPodEvictionPolicy: AlwaysAllow
  {{- end }}
  selector:
    matchLabels:
      {{- include "chatboard.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
