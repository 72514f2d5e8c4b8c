"""A CRI client on grpcio (gRPC C-core), driven line by line by stevedore_tests::foreign.

argv[1] is the target (unix:///path): grpcio then sends its default :authority, the
socket path percent-encoded. Each stdin line is a JSON request, each stdout line the
JSON answer. Messages are bytes both ways (no serializers): the Rust side encodes
requests and decodes answers, grpcio carries them.
"""
import base64
import json
import queue
import sys
import threading

import grpc

OPTIONS = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]
channel = grpc.insecure_channel(sys.argv[1], options=OPTIONS)
streams = {}


def status(err):
    return {"code": err.code().value[0], "message": err.details() or ""}


def unary(req):
    call = channel.unary_unary(req["path"])
    try:
        resp, _ = call.with_call(
            base64.b64decode(req["req"]), timeout=req["timeout"], metadata=[tuple(m) for m in req["metadata"]]
        )
        return {"code": 0, "message": "", "resp": base64.b64encode(resp).decode()}
    except grpc.RpcError as err:
        return status(err)


def open_stream(req):
    call = channel.unary_stream(req["path"])(
        base64.b64decode(req["req"]), timeout=req["timeout"], metadata=[tuple(m) for m in req["metadata"]]
    )
    messages = queue.Queue()

    def pump():
        try:
            for msg in call:
                messages.put({"msg": base64.b64encode(msg).decode()})
            messages.put({"end": True, "code": 0, "message": ""})
        except grpc.RpcError as err:
            messages.put(dict(end=True, **status(err)))

    threading.Thread(target=pump, daemon=True).start()
    streams[req["id"]] = (call, messages)
    return {"opened": True}


def next_message(req):
    try:
        return streams[req["id"]][1].get(timeout=req["wait"])
    except queue.Empty:
        return {"none": True}


def cancel(req):
    call, _ = streams.pop(req["id"])
    call.cancel()
    return {"cancelled": True}


OPS = {"unary": unary, "open": open_stream, "next": next_message, "cancel": cancel}

for line in sys.stdin:
    req = json.loads(line)
    try:
        out = OPS[req["op"]](req)
    except Exception as err:  # reported to the driver, which fails the test with it
        out = {"error": f"{type(err).__name__}: {err}"}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
