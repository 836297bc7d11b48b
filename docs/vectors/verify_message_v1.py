#!/usr/bin/env python3
"""Checks docs/vectors/message-v1.json with an implementation independent of Kagi's.

Needs the `cryptography` package (pip install cryptography). Exits non-zero on mismatch.
Rebuilds every vector's message from its inputs, following docs/message-format.md only:
header, header tag, key section, frames, HKDF labels and key commitment, for both suites and
both body modes. The vectors' "wrapped_keys" are arbitrary bytes: the message layer only
carries them.
"""
import json
import pathlib
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SUITES = {
    "AES-256-GCM-HKDF-SHA256-COMMIT": (0x01, AESGCM),
    "CHACHA20-POLY1305-HKDF-SHA256-COMMIT": (0x02, ChaCha20Poly1305),
}
KINDS = {"tenant": 0x01, "escrow": 0x02}


def hkdf(salt, ikm, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def encode_context(context):
    # Sorted by the UTF-8 bytes of the key (Python's str order is code point order, the same).
    out = struct.pack(">H", len(context))
    for k, v in sorted(context.items(), key=lambda kv: kv[0].encode()):
        out += struct.pack(">H", len(k.encode())) + k.encode()
        out += struct.pack(">H", len(v.encode())) + v.encode()
    return out


def nonce(seq):
    return b"\x00" * 8 + struct.pack(">I", seq)


def build(v):
    suite_id, aead_class = SUITES[v["suite"]]
    data_key = bytes.fromhex(v["data_key"])
    message_id = bytes.fromhex(v["message_id"])
    message_key = hkdf(message_id, data_key, b"kagi/v1/envelope-key" + bytes([suite_id]))
    commitment = hkdf(message_id, data_key, b"kagi/v1/envelope-commitment" + bytes([suite_id]))
    assert message_key.hex() == v["message_key"], "message key"
    assert commitment.hex() == v["commitment"], "commitment"
    aead = aead_class(message_key)

    framed = v["body_mode"] == "framed"
    frame_size = v["frame_size"] if framed else 0
    tenant = v["tenant_id"].encode()
    context = encode_context(v["context"])
    assert context.hex() == v["encoded_context"], "context encoding"
    authenticated = (
        b"KE" + bytes([0x01, suite_id, 0x02 if framed else 0x01]) + struct.pack(">I", frame_size)
        + message_id + struct.pack(">H", len(tenant)) + tenant
        + bytes.fromhex(v["key_id"]) + struct.pack(">H", len(context)) + context + commitment
    )
    # The header tag: the AEAD over an empty plaintext, nonce 0.
    tag = aead.encrypt(nonce(0), b"", b"kagi/v1/header" + authenticated)
    keys = v["wrapped_keys"]
    section = bytes([len(keys)])
    for k in keys:
        wrapped = bytes.fromhex(k["bytes"])
        section += bytes([KINDS[k["kind"]]]) + struct.pack(">H", len(wrapped)) + wrapped

    plaintext = bytes.fromhex(v["plaintext"])
    chunks = []
    if framed:
        full = len(plaintext) // frame_size
        chunks = [plaintext[i * frame_size:(i + 1) * frame_size] for i in range(full)]
        last = plaintext[full * frame_size:]
    else:
        last = plaintext
    body = b""
    for seq, chunk in enumerate(chunks, start=1):
        aad = b"kagi/v1/frame" + message_id + b"\x00" + struct.pack(">IQ", seq, len(chunk))
        body += b"\x00" + struct.pack(">I", seq) + aead.encrypt(nonce(seq), chunk, aad)
    seq = len(chunks) + 1
    aad = b"kagi/v1/frame" + message_id + b"\x01" + struct.pack(">IQ", seq, len(last))
    body += b"\x01" + struct.pack(">II", seq, len(last)) + aead.encrypt(nonce(seq), last, aad)
    return authenticated + tag + section + body


def main():
    path = pathlib.Path(__file__).parent / "message-v1.json"
    vectors = json.loads(path.read_text(encoding="utf-8"))
    for v in vectors:
        message = build(v)
        if message.hex() != v["message"]:
            sys.exit(f"mismatch in {v['description']!r}: {message.hex()}")
    print(f"message-v1.json verified ({len(vectors)} vectors)")


if __name__ == "__main__":
    main()
