# Posts messages with a word of their own and times how long each takes to be found by a
# search (see search-lag.sh): python3 search-lag.py STATE_FILE [POSTS]
import json, sys, time, urllib.request, random
state = json.load(open(sys.argv[1]))
api, tok, room = state["api"], state["writer_token"], state["big_room"]
def call(method, path, body=None):
    req = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or "null")
org = call("GET", f"/api/rooms/{room}/")["org"]
lags = []
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 30):
    word = f"lagword{random.randrange(10**9)}"
    t0 = time.monotonic()
    call("POST", f"/api/rooms/{room}/messages/", {"body": f"marker {word}"})
    polls = 0
    while True:
        polls += 1
        if call("GET", f"/api/orgs/{org}/search/?q={word}")["results"]:
            break
        time.sleep(0.005)
    lags.append((time.monotonic() - t0) * 1000)
    time.sleep(random.uniform(0.05, 0.3))
lags.sort()
print(f"post -> found by search: n={len(lags)} p50={lags[len(lags)//2]:.0f} ms p90={lags[int(len(lags)*0.9)]:.0f} ms max={lags[-1]:.0f} ms")
