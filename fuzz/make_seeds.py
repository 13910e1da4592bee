#!/usr/bin/python3
"""Writes the seed corpus of each fuzz target into fuzz/corpus/<target>/.

The seeds are ordinary and edge-case inputs of each parser, so that
libFuzzer starts from the interesting shapes instead of discovering JSON,
msgpack and JWT from nothing. Inputs that once broke a parser are kept
beside them as regression-* files (written by hand, not by this script).
Run with Debian's python3 (python3-msgpack, python3-jwt): fuzz/make_seeds.py
"""
import base64
import json
import os
import struct
import sys

import jwt
import msgpack

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# fuzz_auth_token.c verifies with this HS256 secret; keep the two in step.
AUTH_SECRET = "holdfast-fuzz-secret-0123456789abcdef"
# The API key written into the keys file fuzz_auth_token.c loads.
AUTH_API_KEY = "hfk_fuzz_0123456789abcdef0123456789"


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def ingest_body():
    seeds = {
        "one": '{"channel":"orders:42","type":"order.created","data":{"total":12.5}}',
        "batch": '[{"channel":"a","data":1},{"channel":"b","data":"s,}"},'
                 '{"channel":"c","data":[[],{}]},{"channel":"d","d\\u0061ta":true}]',
        "spaces": ' \r\n{ "data" : [ 1 , { "x" : "}" } ] ,\t"channel" : "x.y@z=1-2_3" }\n',
        "null_type": '{"channel":"c","type":null,"data":null}',
        "numbers": '[{"channel":"n","data":-1.5e+300},{"channel":"n","data":0}]',
        "unicode": '{"channel":"u","data":"\\u00e9\\ud83d\\ude00 caf\u00e9 \\"q\\" \\\\"}',
        "nested": '{"channel":"deep","data":' + "[" * 40 + "]" * 40 + "}",
        "unknown_field": '{"channel":"a","data":1,"d\u00e9j\u00e0":2}',
        "bad_channel": '{"channel":"a/b","data":1}',
        "bad_type": '{"channel":"a","type":"x y","data":1}',
        "duplicate": '{"channel":"a","data":1,"d\\u0061ta":2}',
        "trailing": '{"channel":"a","data":1} x',
        "empty_batch": "[]",
        "not_object": "[1,2]",
        "truncated": '{"channel":"a","data":"\u00e9\u00e9\u00e9',
    }
    for name, text in seeds.items():
        write("fuzz_ingest_body", name, text)


def envelope_dict(**extra):
    env = {"v": 1, "id": "0191d5a2-7c1e-7d3a-9a4b-1f2e3d4c5b6a", "ch": "orders:eu",
           "t": "order.created", "ct": "application/json", "ep": "e7",
           "d": b'{"total":42}', "p": 5, "o": 1234567890123, "po": 1234567890001,
           "ts": 1700000000123456, "r": True}
    env.update(extra)
    return env


def envelope():
    pack = msgpack.packb
    write("fuzz_envelope", "full", pack(envelope_dict()))
    write("fuzz_envelope", "minimal", pack({"v": 1, "id": "e", "ch": "c", "d": b"x"}))
    write("fuzz_envelope", "nil_optionals",
          pack(envelope_dict(t=None, ct=None, ep=None, r=False, po=-1, o=-1, p=-1)))
    write("fuzz_envelope", "str_payload", pack(envelope_dict(d="text payload"), use_bin_type=False))
    write("fuzz_envelope", "unknown_keys",
          pack(envelope_dict(x=[1, {"y": [None, 2.5, b"z"]}], z=msgpack.ExtType(5, b"ext"))))
    write("fuzz_envelope", "binary_payload",
          pack(envelope_dict(ct="application/octet-stream", d=bytes(range(256)))))
    write("fuzz_envelope", "future_version", pack(envelope_dict(v=2)))
    write("fuzz_envelope", "wide_ints",
          pack(envelope_dict(o=2**63 - 1, ts=-2**63, p=2**31 - 1)))
    # An array header claiming 50M elements (envelope.c's comment).
    write("fuzz_envelope", "hostile_count", bytes.fromhex("dd02faf080"))
    write("fuzz_envelope", "map32_hostile", bytes.fromhex("dfffffffff"))


def ws_client_message():
    messages = {
        "subscribe": {"type": "subscribe", "channel": "orders:42",
                      "since": {"offset": 17, "epoch": "ac82732d7331c529"}},
        "subscribe_first": {"type": "subscribe", "channel": "a", "since": {"offset": -1,
                                                                           "epoch": None}},
        "subscribe_plain": {"type": "subscribe", "channel": "demo"},
        "unsubscribe": {"type": "unsubscribe", "channel": "demo"},
        "ping": {"type": "ping"},
        "bad_since": {"type": "unsubscribe", "channel": "a", "since": {"offset": 1}},
        "unknown_type": {"type": "publish", "channel": "a"},
        "auth": {"type": "auth", "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "id": "r1"},
        "pong": {"type": "pong"},
        "subscribe_id": {"type": "subscribe", "channel": "a", "id": 7},
    }
    for name, msg in messages.items():
        write("fuzz_ws_client_message", name + ".json", json.dumps(msg))
        write("fuzz_ws_client_message", name + ".msgpack", msgpack.packb(msg))
    write("fuzz_ws_client_message", "not_json.json", '{"type":"subscribe","channel":"\u00e9' * 3)
    write("fuzz_ws_client_message", "duplicate.json", '{"type":"ping","type":"ping"}')


def http_request():
    token = jwt.encode({"sub": "svc-http", "publish": ["orders:*", "a", "b"],
                        "subscribe": ["orders:*"]}, AUTH_SECRET, algorithm="HS256")
    bearer = "Authorization: Bearer " + token
    body = '{"channel":"orders:42","type":"order.created","data":{"total":12.5}}'
    batch = '[{"channel":"a","data":1},{"channel":"b","data":[2]}]'

    def post(body, headers):
        lines = ["POST /v1/events HTTP/1.1", "Host: ingest"] + headers
        return "\r\n".join(lines + ["Content-Length: %d" % len(body.encode()), "", body])

    def get(target, headers=()):
        return "\r\n".join(["GET %s HTTP/1.1" % target, "Host: ingest"] + list(headers) +
                            ["", ""])

    json_type = "Content-Type: application/json"
    seeds = {
        "post_event": post(body, [json_type, bearer]),
        "post_batch_key": post(batch, ["Content-Type: Application/JSON; charset=utf-8",
                                       "Idempotency-Key: order-42-created", bearer]),
        "post_api_key": post(body, [json_type, "authorization: bearer " + AUTH_API_KEY]),
        "post_no_token": post(body, [json_type]),
        "post_bad_token": post(body, [json_type, "Authorization: Bearer abc.def.ghi"]),
        "post_forbidden": post('{"channel":"other","data":1}', [json_type, bearer]),
        "post_bad_key": post(body, [json_type, bearer, "Idempotency-Key: a b"]),
        "post_wrong_type": post(body, ["Content-Type: text/plain", bearer]),
        "post_bad_body": post('{"channel":"a","data":1,"x":2}', [json_type, bearer]),
        "post_no_length": "POST /v1/events HTTP/1.1\r\n%s\r\n%s\r\n\r\n%s" % (json_type, bearer,
                                                                             body),
        "post_too_large": "POST /v1/events HTTP/1.1\r\n%s\r\nContent-Length: 99999999999\r\n"
                          "\r\n{}" % json_type,
        # one connection: the second and third publish find the bucket empty (429)
        "keepalive_posts": post(batch, [json_type, bearer]) + post(body, [json_type, bearer]) +
                           post(batch, [json_type, bearer]),
        "keepalive_mixed": get("/livez") + get("/v1/channels/orders:1/events", [bearer]) +
                           post(body, [json_type, bearer]),
        "history": get("/v1/channels/orders:42/events?since=17&limit=10&epoch=ac82732d7331c529",
                       [bearer]),
        "history_encoded": get("/v1/channels/orders%3A42/events?since=-1&limit=1000&epoch=&x+y=%41",
                               [bearer]),
        "history_bad": get("/v1/channels/a%2Fb/events?since=-2&limit=0", [bearer]),
        "history_forbidden": get("/v1/channels/news/events", [bearer]),
        "history_no_token": get("/v1/channels/orders:42/events"),
        "livez": get("/livez"),
        "wrong_method": "DELETE /v1/events HTTP/1.1\r\n\r\n",
        "not_found": get("/v2/nothing?a=b"),
        "cors_preflight": "OPTIONS /v1/events HTTP/1.1\r\nHost: ingest\r\n"
                          "Origin: https://app.example.com\r\n"
                          "Access-Control-Request-Method: POST\r\n\r\n",
        "cors_post": post(body, [json_type, bearer, "Origin: https://app.example.com"]),
        "cors_other_origin": get("/v1/channels/orders:1/events", [bearer, "Origin: null"]),
    }
    for name, request in seeds.items():
        write("fuzz_http_request", name, request)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def auth_token():
    claims = {"sub": "svc-orders", "publish": ["orders:*"], "subscribe": ["orders:*", "demo"]}
    seeds = {
        "hs256": jwt.encode(claims, AUTH_SECRET, algorithm="HS256"),
        "hs256_exp": jwt.encode(dict(claims, exp=4102444800, nbf=1600000000), AUTH_SECRET,
                                algorithm="HS256"),
        "hs256_expired": jwt.encode(dict(claims, exp=1600000000), AUTH_SECRET, algorithm="HS256"),
        "hs256_minimal": jwt.encode({"sub": "x"}, AUTH_SECRET, algorithm="HS256"),
        "hs256_no_sub": jwt.encode({"publish": ["*"]}, AUTH_SECRET, algorithm="HS256"),
        "hs256_bad_claims": jwt.encode({"sub": 7, "publish": "orders:*", "subscribe": [1, None]},
                                       AUTH_SECRET, algorithm="HS256"),
        "hs256_wrong_secret": jwt.encode(claims, "another-secret-of-at-least-32-bytes!",
                                         algorithm="HS256"),
        "hs384": jwt.encode(claims, AUTH_SECRET, algorithm="HS384"),
        "alg_none": b64url(b'{"alg":"none","typ":"JWT"}') + "." +
                    b64url(json.dumps(claims).encode()) + ".",
        "three_dots": "a.b.c.d",
        "bad_base64": "eyJhbGciOiJIUzI1NiJ9.!!!.sig",
        "not_json_header": b64url(b"{alg:HS256}") + "." + b64url(b"{}") + ".c2ln",
        "api_key": AUTH_API_KEY,
        "empty": "",
    }
    for name, token in seeds.items():
        write("fuzz_auth_token", name, token)
    # Claims for the target to sign itself (a mutated token never gets
    # past its signature; claims made by an issuer do).
    claim_seeds = {
        "claims_full": dict(claims, exp=4102444800, nbf=1600000000, iat=1700000000),
        "claims_minimal": {"sub": "x"},
        "claims_globs": {"sub": "svc", "publish": ["*", "a*b*c", "orders:*:eu"],
                         "subscribe": []},
        "claims_bad_pattern": {"sub": "svc", "publish": ["a/b"]},
    }
    for name, claims in claim_seeds.items():
        write("fuzz_auth_token", name, json.dumps(claims))
    # hf_auth_bearer / hf_auth_glob_match: "header value\npattern-or-channel"
    write("fuzz_auth_token", "split_bearer", "Bearer  " + seeds["hs256"] + "\norders:*")
    write("fuzz_auth_token", "split_glob", "a*b*c*\naxxbyyc")


def pg_frame(msg):
    return struct.pack(">H", len(msg)) + msg


def pg_relation(relid=16400, cols=None):
    cols = cols or [("id", 2950), ("channel", 25), ("partition", 23), ("type", 25),
                    ("payload", 17), ("content_type", 25), ("idempotency_key", 25),
                    ("created_at", 1184)]
    m = b"R" + struct.pack(">I", relid) + b"holdfast\0events\0d" + struct.pack(">H", len(cols))
    for i, (name, oid) in enumerate(cols):
        m += bytes([1 if i == 0 else 0]) + name.encode() + b"\0" + struct.pack(">Ii", oid, -1)
    return m


def pg_insert(channel=b"orders:42", payload=b'{"a":1}', type_=b"order.created", relid=16400):
    def val(b):
        return b"b" + struct.pack(">I", len(b)) + b
    m = b"I" + struct.pack(">I", relid) + b"N" + struct.pack(">H", 8)
    m += val(bytes(range(0xa0, 0xb0))) + val(channel) + val(struct.pack(">i", 3))
    m += (val(type_) if type_ is not None else b"n") + val(payload)
    m += val(b"application/json") + b"n" + val(struct.pack(">q", 1000000))
    return m


def pgoutput():
    begin = b"B" + struct.pack(">QqI", 0x1234, 5000000, 777)
    commit = b"C\0" + struct.pack(">QQq", 0x1234, 0x1300, 5000000)
    write("fuzz_pgoutput", "transaction",
          b"".join(map(pg_frame, [pg_relation(), begin, pg_insert(), pg_insert(b"b", b"", None),
                                  commit])))
    write("fuzz_pgoutput", "other_table",
          b"".join(map(pg_frame, [pg_relation(), begin, pg_insert(relid=1), commit])))
    write("fuzz_pgoutput", "no_relation", b"".join(map(pg_frame, [begin, pg_insert(), commit])))
    write("fuzz_pgoutput", "bad_types",
          b"".join(map(pg_frame, [pg_relation(cols=[("id", 25), ("channel", 25)]), begin])))
    write("fuzz_pgoutput", "keepalive_like", pg_frame(b"k" + bytes(17)) + pg_frame(b"Y\0\0\0\x05"))


def main():
    targets = {"fuzz_ingest_body": ingest_body, "fuzz_envelope": envelope,
               "fuzz_ws_client_message": ws_client_message, "fuzz_http_request": http_request,
               "fuzz_auth_token": auth_token, "fuzz_pgoutput": pgoutput}
    for name in sys.argv[1:] or targets:
        targets[name]()


if __name__ == "__main__":
    main()
