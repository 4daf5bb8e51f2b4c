"""The MCP server the conformance suite (@modelcontextprotocol/conformance) tests, built
with MCP's official Python SDK: the tools, resources and prompts its server scenarios
call by name (test_simple_text, test://static-text, test_simple_prompt, ...), served over
Streamable HTTP at /mcp for every protocol revision the SDK speaks (the 2025 revisions'
initialize sessions and 2026-07-28's self-contained requests alike).

The server also counts what a server behind writ must never see: a request bearing a
writ. Each request's Authorization header is compared with the key the gateway injects
(CONFORMANCE_UPSTREAM_KEY); GET /seen reports how many bore that key, how many bore
anything else, and how many none (the suite run straight at the server sends none).

Prints one JSON line with its port, then serves until stdin closes.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import threading

from typing import Annotated

import uvicorn
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Audio, Context, Image, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    Completion,
    InputRequiredResult,
    EmbeddedResource,
    CallToolResult,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# A 1x1 red PNG and a minimal WAV: the payloads the suite's checks compare.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

UPSTREAM_KEY = os.environ["CONFORMANCE_UPSTREAM_KEY"]
SEEN = {"upstream_key": 0, "foreign": 0, "none": 0}
SUBSCRIPTIONS: set[str] = set()

cacheable = CacheHint(ttl_ms=0, scope="private")
mcp = MCPServer(
    "mcp-conformance-test-server",
    version="1.0.0",
    cache_hints={
        "tools/list": cacheable,
        "prompts/list": cacheable,
        "resources/list": cacheable,
        "resources/templates/list": cacheable,
        "resources/read": cacheable,
    },
)


# ---- tools ----


@mcp.tool(description="Tests simple text content response")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@mcp.tool(description="Tests image content response")
def test_image_content() -> Image:
    return Image(data=base64.b64decode(PNG), format="png")


@mcp.tool(description="Tests audio content response")
def test_audio_content() -> Audio:
    return Audio(data=base64.b64decode(WAV), format="wav")


@mcp.tool(description="Tests embedded resource content response")
def test_embedded_resource() -> list[EmbeddedResource]:
    return [
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://embedded-resource",
                mime_type="text/plain",
                text="This is an embedded resource content.",
            ),
        )
    ]


@mcp.tool(description="Tests response with multiple content types (text, image, resource)")
def test_multiple_content_types() -> list:
    return [
        TextContent(type="text", text="Multiple content types test:"),
        Image(data=base64.b64decode(PNG), format="png").to_image_content(),
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://mixed-content-resource",
                mime_type="application/json",
                text=json.dumps({"test": "data", "value": 123}),
            ),
        ),
    ]


@mcp.tool(description="Tests tool that emits log messages during execution")
async def test_tool_with_logging(ctx: Context) -> str:
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message)
    return "Tool with logging executed successfully"


@mcp.tool(description="Tests tool that reports progress notifications")
async def test_tool_with_progress(ctx: Context) -> str:
    for step in (0, 50, 100):
        await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
    meta = ctx.request_context.meta or {}
    return str(meta.get("progressToken", 0))


@mcp.tool(description="Tests error response handling")
def test_error_handling() -> str:
    raise RuntimeError("This tool intentionally returns an error for testing")


@mcp.tool(description="Tests server-initiated sampling (LLM completion request)")
async def test_sampling(prompt: str, ctx: Context) -> str:
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
        max_tokens=100,
    )
    text = result.content.text if result.content.type == "text" else "No response"
    return f"LLM response: {text}"


class UserResponse(BaseModel):
    response: str | None = Field(default=None, description="User's response")


@mcp.tool(description="Tests server-initiated elicitation (user input request)")
async def test_elicitation(message: str, ctx: Context) -> str:
    result = await ctx.elicit(message=message, schema=UserResponse)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"User response: action={result.action}, content={content}"


class Defaults(BaseModel):
    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active",
        description="User status",
        json_schema_extra={"enum": ["active", "inactive", "pending"]},
    )
    verified: bool = Field(default=True, description="Verification status")


@mcp.tool(description="Tests elicitation with default values per SEP-1034")
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    result = await ctx.elicit(message="Please review and update the form fields with defaults", schema=Defaults)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"Elicitation completed: action={result.action}, content={content}"


class Enums(BaseModel):
    untitledSingle: str = Field(
        description="Simple enum without titles",
        json_schema_extra={"enum": ["option1", "option2", "option3"]},
    )
    titledSingle: str = Field(
        description="Enum with titled options",
        json_schema_extra={
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ]
        },
    )
    legacyEnum: str = Field(
        description="Legacy enum with enumNames",
        json_schema_extra={
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
    )
    untitledMulti: list[str] = Field(
        description="Multi-select without titles",
        json_schema_extra={"items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
    )
    titledMulti: list[str] = Field(
        description="Multi-select with titled options",
        json_schema_extra={
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            }
        },
    )


@mcp.tool(description="Tests elicitation with enum schema variations per SEP-1330")
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    result = await ctx.elicit(message="Please select options from the enum fields", schema=Enums)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"Elicitation completed: action={result.action}, content={content}"


@mcp.tool(description="Tests that the 2020-12 keywords of an input schema reach the client")
def json_schema_2020_12_tool(name: str | None = None) -> str:
    return f"Hello, {name}"


# The suite checks the schema as written: $schema, $defs, $anchor, $ref, allOf, if/then/else.
mcp._tool_manager.get_tool("json_schema_2020_12_tool").parameters = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@mcp.tool(description="Tests that a tool argument mirrored into a header (x-mcp-header) must match the body")
def test_custom_headers(
    region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
) -> str:
    return f"region={region}"


@mcp.tool(description="Needs the client's sampling capability; refused (-32021) without it")
async def test_missing_capability(ctx: Context) -> str:
    caps = ctx.client_capabilities
    if caps is None or caps.sampling is None:
        raise MCPError(
            code=MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="Client did not declare the sampling capability",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return "sampling is declared"


@mcp.tool(description="Closes its SSE stream mid-call; the client resumes it (SEP-1699)")
async def test_reconnection(ctx: Context) -> str:
    await ctx.close_sse_stream()
    # Finishes after the client's GET has resumed the stream: the result is replayed there.
    await asyncio.sleep(0.2)
    return "Reconnection test completed successfully"


class MemoryEvents(EventStore):
    """Every SSE event kept in memory, so a client that lost a stream can resume it
    (`Last-Event-ID`)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, object]] = []

    async def store_event(self, stream_id, message):
        self.events.append((stream_id, len(self.events) + 1, message))
        return str(len(self.events))

    async def replay_events_after(self, last_event_id, send_callback: EventCallback):
        if not last_event_id.isdigit() or not 0 < int(last_event_id) <= len(self.events):
            return None
        stream_id = self.events[int(last_event_id) - 1][0]
        for stream, event_id, message in self.events[int(last_event_id) :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, str(event_id)))
        return stream_id


# ---- 2026-07-28 multi-round-trip requests (SEP-2322): InputRequiredResult ----

STATE_KEY = os.urandom(32)


def seal(state: dict) -> str:
    body = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
    tag = hmac.new(STATE_KEY, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{tag}"


def unseal(sealed: str | None) -> dict:
    body, _, tag = (sealed or "").partition(".")
    good = hmac.new(STATE_KEY, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(tag, good):
        raise MCPError(code=INVALID_PARAMS, message="requestState failed its integrity check")
    return json.loads(base64.urlsafe_b64decode(body))


def ask(requests: dict, state: dict | None = None) -> InputRequiredResult:
    wire = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        wire["requestState"] = seal(state)
    return InputRequiredResult.model_validate(wire)


def elicit(message: str, field: str, kind: str = "string") -> dict:
    return {
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {"type": "object", "properties": {field: {"type": kind}}, "required": [field]},
        },
    }


def sample(text: str, max_tokens: int) -> dict:
    return {
        "method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": max_tokens},
    }


ROOTS = {"method": "roots/list", "params": {}}


def responses(ctx: Context) -> dict:
    return {k: (v.model_dump(by_alias=True, exclude_none=True, mode="json") if hasattr(v, "model_dump") else v)
            for k, v in (ctx.input_responses or {}).items()}


def text_of(response: dict) -> str:
    content = response.get("content") or {}
    return content.get("text", "") if isinstance(content, dict) else ""


@mcp.tool(description="SEP-2322: one elicitation input request")
async def test_input_required_result_elicitation(ctx: Context) -> CallToolResult | InputRequiredResult:
    got = responses(ctx)
    if not isinstance(got.get("user_name"), dict):
        return ask({"user_name": elicit("What is your name?", "name")})
    name = (got["user_name"].get("content") or {}).get("name", "")
    return CallToolResult(content=[TextContent(type="text", text=f"Hello, {name}!")])


@mcp.tool(description="SEP-2322: one sampling input request")
async def test_input_required_result_sampling(ctx: Context) -> CallToolResult | InputRequiredResult:
    got = responses(ctx)
    if "capital_question" not in got:
        return ask({"capital_question": sample("What is the capital of France?", 100)})
    return CallToolResult(content=[TextContent(type="text", text=f"The model said: {text_of(got['capital_question'])}")])


@mcp.tool(description="SEP-2322: one roots/list input request")
async def test_input_required_result_list_roots(ctx: Context) -> CallToolResult | InputRequiredResult:
    got = responses(ctx)
    if "client_roots" not in got:
        return ask({"client_roots": ROOTS})
    roots = ", ".join(r.get("uri", "") for r in got["client_roots"].get("roots", []))
    return CallToolResult(content=[TextContent(type="text", text=f"Roots: {roots}")])


@mcp.tool(description="SEP-2322: requestState round trip")
async def test_input_required_result_request_state(ctx: Context) -> CallToolResult | InputRequiredResult:
    if ctx.request_state is None:
        return ask({"confirm": elicit("Please confirm", "ok", "boolean")}, {"round": 1})
    unseal(ctx.request_state)
    return CallToolResult(content=[TextContent(type="text", text="state-ok: confirmed")])


@mcp.tool(description="SEP-2322: elicitation, sampling and roots/list at once")
async def test_input_required_result_multiple_inputs(ctx: Context) -> CallToolResult | InputRequiredResult:
    got = responses(ctx)
    wanted = {
        "user_name": elicit("What is your name?", "name"),
        "greeting": sample("Say hello", 50),
        "client_roots": ROOTS,
    }
    if ctx.request_state is None or any(k not in got for k in wanted):
        return ask(wanted, {"round": 1})
    unseal(ctx.request_state)
    return CallToolResult(content=[TextContent(type="text", text="All inputs received")])


@mcp.tool(description="SEP-2322: two rounds, the state evolving")
async def test_input_required_result_multi_round(ctx: Context) -> CallToolResult | InputRequiredResult:
    if ctx.request_state is None:
        return ask({"step1": elicit("Step 1: What is your name?", "name")}, {"round": 1})
    state = unseal(ctx.request_state)
    got = responses(ctx)
    if state["round"] == 1:
        name = (got.get("step1", {}).get("content") or {}).get("name", "")
        return ask({"step2": elicit("Step 2: What is your favorite color?", "color")}, {"round": 2, "name": name})
    color = (got.get("step2", {}).get("content") or {}).get("color", "")
    return CallToolResult(content=[TextContent(type="text", text=f"{state['name']} likes {color}")])


@mcp.tool(description="SEP-2322: requestState is integrity-protected")
async def test_input_required_result_tampered_state(ctx: Context) -> CallToolResult | InputRequiredResult:
    if ctx.request_state is None:
        return ask({"confirm": elicit("Please confirm", "ok", "boolean")}, {"round": 1})
    unseal(ctx.request_state)
    return CallToolResult(content=[TextContent(type="text", text="state-ok")])


@mcp.tool(description="SEP-2322: input requests only for declared client capabilities")
async def test_input_required_result_capabilities(ctx: Context) -> CallToolResult | InputRequiredResult:
    if ctx.input_responses:
        return CallToolResult(content=[TextContent(type="text", text="done")])
    caps = ctx.client_capabilities
    wanted = {}
    if caps is not None and caps.elicitation is not None:
        wanted["user_name"] = elicit("What is your name?", "name")
    if caps is not None and caps.sampling is not None:
        wanted["greeting"] = sample("Say hello", 50)
    if caps is not None and caps.roots is not None:
        wanted["client_roots"] = ROOTS
    if not wanted:
        return CallToolResult(content=[TextContent(type="text", text="nothing to ask")])
    return ask(wanted)


# ---- resources ----


@mcp.resource("test://static-text", name="static-text", mime_type="text/plain", description="A static text resource")
def static_text() -> str:
    return "This is the content of the static text resource."


@mcp.resource("test://static-binary", name="static-binary", mime_type="image/png", description="A static binary resource")
def static_binary() -> bytes:
    return base64.b64decode(PNG)


@mcp.resource(
    "test://template/{id}/data",
    name="template",
    mime_type="application/json",
    description="A resource template with parameter substitution",
)
def template(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@mcp.resource("test://watched-resource", name="watched-resource", mime_type="text/plain", description="A resource that can be subscribed to")
def watched() -> str:
    return "Watched resource content"


# ---- prompts ----


@mcp.prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> list[UserMessage]:
    return [UserMessage(content=TextContent(type="text", text="This is a simple prompt for testing."))]


@mcp.prompt(description="A prompt with required arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    return [UserMessage(content=TextContent(type="text", text=f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]


@mcp.prompt(description="A prompt that includes an embedded resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    return [
        UserMessage(
            content=EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
                ),
            )
        ),
        UserMessage(content=TextContent(type="text", text="Please process the embedded resource above.")),
    ]


@mcp.prompt(description="A prompt that includes image content")
def test_prompt_with_image() -> list[UserMessage]:
    return [
        UserMessage(content=Image(data=base64.b64decode(PNG), format="png").to_image_content()),
        UserMessage(content=TextContent(type="text", text="Please analyze the image above.")),
    ]


@mcp.prompt(description="SEP-2322: a prompt that needs input first")
async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
    got = responses(ctx)
    if "user_context" not in got:
        return ask({"user_context": elicit("What context should the prompt use?", "context")})
    context = (got["user_context"].get("content") or {}).get("context", "")
    return [UserMessage(content=TextContent(type="text", text=f"Prompt with context: {context}"))]


@mcp.completion()
async def complete(ref, argument, context) -> Completion:
    return Completion(values=[], total=0, has_more=False)


# ---- the legacy handlers MCPServer has no decorator for ----


async def set_level(ctx, params: SetLevelRequestParams) -> dict:
    return {}


async def subscribe(ctx, params: SubscribeRequestParams) -> dict:
    SUBSCRIPTIONS.add(str(params.uri))
    return {}


async def unsubscribe(ctx, params: UnsubscribeRequestParams) -> dict:
    SUBSCRIPTIONS.discard(str(params.uri))
    return {}


mcp._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
mcp._lowlevel_server.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
mcp._lowlevel_server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


async def seen(_request: Request) -> JSONResponse:
    return JSONResponse(SEEN)


mcp._custom_starlette_routes.append(Route("/seen", seen, methods=["GET"]))


class CountAuthorization:
    """ASGI middleware: counts MCP requests by their Authorization header: the upstream
    key the gateway injects, anything else (a writ that reached the server), or none."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            auth = [v for k, v in scope["headers"] if k == b"authorization"]
            if not auth:
                SEEN["none"] += 1
            elif auth == [f"Bearer {UPSTREAM_KEY}".encode()]:
                SEEN["upstream_key"] += 1
            else:
                SEEN["foreign"] += 1
        await self.app(scope, receive, send)


def exit_when_stdin_closes() -> None:
    sys.stdin.read()
    os._exit(0)


async def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = mcp.streamable_http_app(
        event_store=MemoryEvents(),
        retry_interval=100,
        # The suite's DNS-rebinding scenario sends Host/Origin of another site; the server
        # accepts only its own loopback names (what the SDK's default guard allows).
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        ),
    )
    server = uvicorn.Server(uvicorn.Config(CountAuthorization(app), log_level="warning", lifespan="on"))
    print(json.dumps({"port": port}), flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main())
