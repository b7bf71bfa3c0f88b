"""TritonClient.generate when the gRPC connection to Triton breaks mid-stream (seen in CI as
"Stream removed (recvmsg: Connection reset by peer)"): tritonclient passes grpc's own error on,
which must reach the client as a 503, never as a 500."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from openai_frontend.errors import ServiceUnavailable
from openai_frontend.triton_client import TritonClient


class _BrokenStream:
    def cancel(self) -> None:
        pass

    def __aiter__(self):
        return self

    async def __anext__(self):
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
            details="Stream removed (recvmsg:Connection reset by peer (104))",
        )  # fmt: skip


class _Grpc:
    def stream_infer(self, requests, headers=None):
        return _BrokenStream()


def test_a_broken_grpc_stream_is_a_503_naming_the_break():
    async def run() -> None:
        client = TritonClient("127.0.0.1:1")
        await client._client.close()
        client._client = _Grpc()
        with pytest.raises(ServiceUnavailable, match="Triton's stream broke .UNAVAILABLE: Stream removed"):
            async for _ in client.generate("m", {"text_input": ["hi"]}):
                pass

    asyncio.run(run())
