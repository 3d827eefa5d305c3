"""common/redaction.py: no text made from a request or response keeps a credential, whatever its shape."""

from __future__ import annotations

from kandji_oomnitza.common.redaction import redact, register_secret


def test_redaction_removes_tokens_headers_and_userinfo_whatever_the_shape():
    register_secret("tok-abcdef-123456")
    texts = [
        "Authorization: Bearer tok-abcdef-123456",
        '{"Authorization": "Bearer something-else"}',
        "{'authorization2': 'other-secret'}",
        "see https://admin:hunter2@acme.oomnitza.com/api",
        "raw tok-abcdef-123456 in a sentence",
    ]
    out = [redact(t) for t in texts]
    for text in out:
        for secret in ("tok-abcdef-123456", "something-else", "other-secret", "hunter2", "admin:"):
            assert secret not in text, text
    assert out[0] == "Authorization: Bearer ***" and "https://***@acme.oomnitza.com/api" in out[3]
