"""Verifies writs' approval blocks offline with biscuit-python and the published keys.

Reads the gateway's `/.well-known/writ-keys` (URL in WRIT_KEYS_URL), then for each writ in
WRITS (a JSON object name -> writ) prints one JSON line: the approvals read from blocks the
approval key signed, each with whether it is bound to the block it follows.
"""

import json
import os
import urllib.request

from biscuit_auth import Algorithm, AuthorizerBuilder, Biscuit, PublicKey, Rule


def key(hex_text):
    return PublicKey.from_bytes(bytes.fromhex(hex_text), Algorithm.Ed25519)


published = json.load(urllib.request.urlopen(os.environ["WRIT_KEYS_URL"]))
roots = {k["kid"]: key(k["public_key"]) for k in published["keys"]}
approval_key = key(published["approval_key"]["public_key"])
approval_hex = "ed25519/" + published["approval_key"]["public_key"]

for name, writ in json.loads(os.environ["WRITS"]).items():
    token = Biscuit.from_base64(writ.removeprefix("writ_"), lambda kid: roots[kid])
    # An authorizer that only reads: no policy is evaluated, only the query below.
    authorizer = AuthorizerBuilder().build(token)
    rule = Rule(
        "a($id, $digest, $writ, $by, $method) <- approval($id, $digest, $writ, $exp), "
        "approved_by($by, $method) trusting {key}",
        scope_parameters={"key": approval_key},
    )
    found = []
    for fact in authorizer.query(rule):
        approval_id, digest, bound, by, method = fact.terms
        # Bound to the block it follows: the approval block comes right after it.
        ids = token.revocation_ids
        blocks = [
            i for i in range(1, token.block_count())
            if str(token.block_external_key(i)) == approval_hex and ids[i - 1] == bound
        ]
        found.append(
            {"id": approval_id, "by": by, "method": method, "digest": digest,
             "bound": bool(blocks)}
        )
    print(json.dumps({"writ": name, "approvals": found}))
