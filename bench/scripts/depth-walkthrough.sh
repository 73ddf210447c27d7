#!/usr/bin/env bash
# Issue 20's two-user walkthrough, with curl and a socket, against a fresh server at $B
# (default http://127.0.0.1:8080; the socket at $WS, default the same host; Python 3 with the `websockets` package for the socket):
# Ada posts, Bob replies in a thread mentioning her and reacts, Ada sees the mention in her
# mentions and unread counts and the frames on her /ws/ socket, Bob finds the message by a
# phrase, and Eve, of another organization, cannot.
set -u
B=${B:-http://127.0.0.1:8080}; WS=${WS:-${B/http/ws}}; WORK=${WORK:-$(mktemp -d)}
field() { sed -E "s/.*\"$1\":\"?([^\",}]*).*/\1/"; }
json='Content-Type: application/json'
say() { echo; echo "## $*"; }
reg() { curl -s -X POST $B/auth/register/ -H "$json" -d "{\"email\":\"$1\",\"password\":\"correct horse battery\",\"first_name\":\"$2\"}" >/dev/null;
        curl -s -X POST $B/auth/token/ -H "$json" -d "{\"email\":\"$1\",\"password\":\"correct horse battery\"}" | field access; }
ADA=$(reg ada@example.com Ada); BOB=$(reg bob@example.com Bob); EVE=$(reg eve@example.com Eve)
ORG=$(curl -s -X POST $B/api/orgs/ -H "Authorization: Bearer $ADA" -H "$json" -d '{"name":"Acme"}' | field id)
INVITE=$(curl -s -X POST $B/api/orgs/$ORG/invite/ -H "Authorization: Bearer $ADA" -H "$json" -d '{"email":"bob@example.com"}' | field token)
curl -s -X POST $B/api/orgs/accept-invite/ -H "Authorization: Bearer $BOB" -H "$json" -d "{\"token\":\"$INVITE\"}"; echo
EVE_ORG=$(curl -s -X POST $B/api/orgs/ -H "Authorization: Bearer $EVE" -H "$json" -d '{"name":"Globex"}' | field id)
ROOM=$(curl -s -X POST $B/api/rooms/ -H "Authorization: Bearer $ADA" -H "$json" -d "{\"org\":$ORG,\"name\":\"general\"}" | field id)
echo "org $ORG, room $ROOM, Eve's org $EVE_ORG"
rm -f $WORK/ada.frames $WORK/ada.frames.ready
python3 "$(dirname "$0")/ws-listen.py" "$WS/ws/?token=$ADA" $WORK/ada.frames 3 & LISTEN=$!
while [ ! -e $WORK/ada.frames.ready ]; do sleep 0.1; done
say "Ada posts"
POSTED=$(curl -s -X POST $B/api/rooms/$ROOM/messages/ -H "Authorization: Bearer $ADA" -H "$json" \
  -d '{"body":"The quarterly launch plan is ready for review"}'); echo "$POSTED"
ROOT=$(echo "$POSTED" | field id)
say "Bob replies in the thread, mentioning Ada"
POSTED=$(curl -s -X POST $B/api/rooms/$ROOM/messages/ -H "Authorization: Bearer $BOB" -H "$json" \
  -d "{\"body\":\"Looks good @ada@example.com, one question on the budget\",\"parent_id\":$ROOT}"); echo "$POSTED"
REPLY=$(echo "$POSTED" | field id)
say "Bob reacts to Ada's message"
curl -s -X POST $B/api/rooms/$ROOM/messages/$ROOT/reactions/ -H "Authorization: Bearer $BOB" -H "$json" -d '{"emoji":":+1:"}'; echo
say "The thread (Bob)"
curl -s "$B/api/rooms/$ROOM/messages/$ROOT/thread/" -H "Authorization: Bearer $BOB"; echo
say "Ada's mentions"
curl -s "$B/auth/me/mentions/" -H "Authorization: Bearer $ADA"; echo
say "Ada's unread counts"
curl -s "$B/auth/me/unread-counts/" -H "Authorization: Bearer $ADA"; echo
say "Ada's followed threads"
curl -s "$B/auth/me/threads/" -H "Authorization: Bearer $ADA"; echo
say "Bob's phrase search"
curl -s -G "$B/api/orgs/$ORG/search/" --data-urlencode 'q="launch plan"' -H "Authorization: Bearer $BOB"; echo
say "Eve (another organization) searches Acme, then her own"
curl -s -w " HTTP %{http_code}" -G "$B/api/orgs/$ORG/search/" --data-urlencode 'q="launch plan"' -H "Authorization: Bearer $EVE"; echo
curl -s -w " HTTP %{http_code}" -G "$B/api/orgs/$EVE_ORG/search/" --data-urlencode 'q="launch plan"' -H "Authorization: Bearer $EVE"; echo
wait $LISTEN
say "Frames on Ada's /ws/ socket"
cat $WORK/ada.frames
