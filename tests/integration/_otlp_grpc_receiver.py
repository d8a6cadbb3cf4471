"""A small OTLP/gRPC receiver on the SDK's own protobuf and gRPC stubs (tests only)."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from _otlp_receiver import Received
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class OTLPGrpcReceiver:
    """Serve OTLP/gRPC on 127.0.0.1:``port`` (0: a free one); ``endpoint`` is its URL."""

    def __init__(self, port: int = 0) -> None:
        self.received = Received()
        received = self.received

        def keep(kind: str, request: Any) -> None:
            with received.lock:
                getattr(received, kind).append(request)

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                keep("traces", request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                keep("metrics", request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                keep("logs", request)
                return logs_service_pb2.ExportLogsServiceResponse()

        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)]
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self.server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        if not self.port:
            raise OSError(f"could not bind 127.0.0.1:{port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OTLPGrpcReceiver:
        self.server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.stop(grace=1).wait(5)
