#!/usr/bin/env python3
# Follows one WebSocket (`ws-listen.py URL OUT SECONDS`) and appends each frame's type and key
# fields to OUT as JSON lines, until no frame came for SECONDS. Creates OUT.ready once connected.
import asyncio, json, sys, websockets
async def main(url, out, seconds):
    async with websockets.connect(url) as ws:
        open(out + ".ready", "w").close()
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=seconds))
                keep = {k: frame.get(k) for k in ("type", "room", "emoji", "count", "reply_count") if k in frame}
                msg = frame.get("message") or {}
                if isinstance(msg, dict) and msg:
                    keep["message"] = {k: msg.get(k) for k in ("id", "parent_id", "body") if k in msg}
                for k in ("id", "parent_id", "body", "message_id", "root_id"):
                    if k in frame: keep[k] = frame[k]
                with open(out, "a") as f: f.write(json.dumps(keep, ensure_ascii=False) + "\n")
        except asyncio.TimeoutError:
            pass
asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
