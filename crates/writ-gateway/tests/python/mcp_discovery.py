"""MCP's official Python SDK discovers writ as its own OAuth client code does: the 401
challenge of `/mcp/travel`, the RFC 9728 metadata it points to, and the RFC 8414 metadata
of the authorization server that names, each parsed by the SDK's own models and helpers.
Prints one JSON line with what it found."""

import asyncio
import json
import os

import httpx
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    issuers_match,
)
from mcp.shared.auth import ProtectedResourceMetadata

BASE = os.environ["WRIT_BASE_URL"]


async def main() -> None:
    server_url = f"{BASE}/mcp/travel"
    async with httpx.AsyncClient() as http:
        refused = await http.post(
            server_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        metadata_url = extract_resource_metadata_from_www_auth(refused)
        scope = extract_scope_from_www_auth(refused)
        prm = None
        for url in build_protected_resource_metadata_discovery_urls(metadata_url, server_url):
            prm = await handle_protected_resource_response(await http.get(url))
            if prm is not None:
                break
        assert prm is not None, "no protected-resource metadata parsed"
        auth_server = str(prm.authorization_servers[0])
        asm = None
        for url in build_oauth_authorization_server_metadata_discovery_urls(auth_server, server_url):
            ok, asm = await handle_auth_metadata_response(await http.get(url))
            if asm is not None or not ok:
                break
        assert asm is not None, "no authorization-server metadata parsed"
        root = ProtectedResourceMetadata.model_validate_json(
            (await http.get(f"{BASE}/.well-known/oauth-protected-resource")).content
        )
    print(
        json.dumps(
            {
                "status": refused.status_code,
                "metadata_url": metadata_url,
                "scope": scope,
                "resource": str(prm.resource),
                "issuer_matches": issuers_match(str(asm.issuer), auth_server),
                "token_endpoint": str(asm.token_endpoint),
                "grant_types": asm.grant_types_supported,
                "auth_methods": asm.token_endpoint_auth_methods_supported,
                "details_types": prm.authorization_details_types_supported,
                "dpop_algs": prm.dpop_signing_alg_values_supported,
                "root_resource": str(root.resource),
            }
        )
    )


asyncio.run(main())
