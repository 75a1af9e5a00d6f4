#!/usr/bin/env python3
"""An OTLP receiver for Warden's telemetry tests, on the official
`opentelemetry-proto` definitions.

OTLP/HTTP (protobuf, optional gzip) on POST /v1/traces and /v1/metrics, and
OTLP/gRPC (TraceService/MetricsService Export), both on 127.0.0.1, plaintext.
Every span and metric data point received is appended, one JSON object a line,
to --out (default: stdout). The first line on stdout is
`listening http=PORT grpc=PORT`, so a test can start it with port 0 and read
the ports back.

Needs: opentelemetry-proto==1.45.2 (pulls protobuf>=5,<8) and grpcio (gRPC only;
opentelemetry-proto ships the *_pb2_grpc stubs but does not depend on grpcio).
"""

import argparse
import gzip
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as msvc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
from opentelemetry.proto.trace.v1 import trace_pb2

_lock = threading.Lock()
_out = sys.stdout


def emit(record):
    with _lock:
        _out.write(json.dumps(record, sort_keys=True) + "\n")
        _out.flush()


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def spans_of(req, transport):
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield {
                    "signal": "span",
                    "transport": transport,
                    "resource": resource,
                    "scope": ss.scope.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "trace_state": s.trace_state,
                    "name": s.name,
                    "kind": trace_pb2.Span.SpanKind.Name(s.kind),
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "attributes": attrs(s.attributes),
                    "status": trace_pb2.Status.StatusCode.Name(s.status.code),
                    "status_message": s.status.message,
                    "events": [{"name": e.name, "attributes": attrs(e.attributes)} for e in s.events],
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in s.links],
                }


def points_of(req, transport):
    for rm in req.resource_metrics:
        resource = attrs(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")  # gauge, sum, histogram, exponential_histogram, summary
                data = getattr(m, kind) if kind else None
                base = {"signal": "metric", "transport": transport, "resource": resource,
                        "scope": sm.scope.name, "name": m.name, "unit": m.unit, "type": kind}
                for p in (data.data_points if data is not None else []):
                    rec = dict(base, attributes=attrs(p.attributes))
                    if kind == "histogram":
                        rec.update(count=p.count, sum=p.sum, bounds=list(p.explicit_bounds),
                                   buckets=list(p.bucket_counts))
                    elif kind in ("gauge", "sum"):
                        rec["value"] = getattr(p, p.WhichOneof("value"))
                        if kind == "sum":
                            rec["monotonic"] = data.is_monotonic
                    yield rec


# --- OTLP/HTTP ---------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        routes = {
            "/v1/traces": (tsvc.ExportTraceServiceRequest, tsvc.ExportTraceServiceResponse, spans_of),
            "/v1/metrics": (msvc.ExportMetricsServiceRequest, msvc.ExportMetricsServiceResponse, points_of),
        }
        route = routes.get(self.path.split("?", 1)[0])
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if route is None:
            return self._reply(404, b"", "text/plain")
        ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip()
        if ctype != "application/x-protobuf":
            return self._reply(415, b"", "text/plain")
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        req_type, resp_type, records = route
        req = req_type()
        try:
            req.ParseFromString(body)
        except Exception:  # noqa: BLE001 - a malformed body is a 400
            return self._reply(400, b"", "text/plain")
        for rec in records(req, "http"):
            emit(rec)
        self._reply(200, resp_type().SerializeToString(), "application/x-protobuf")

    def _reply(self, code, payload, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_):  # keep stdout for the ports line and records
        pass


# --- OTLP/gRPC ---------------------------------------------------------------

def start_grpc(port):
    import grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as mgrpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc

    class Traces(tgrpc.TraceServiceServicer):
        def Export(self, request, context):
            for rec in spans_of(request, "grpc"):
                emit(rec)
            return tsvc.ExportTraceServiceResponse()

    class Metrics(mgrpc.MetricsServiceServicer):
        def Export(self, request, context):
            for rec in points_of(request, "grpc"):
                emit(rec)
            return msvc.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    tgrpc.add_TraceServiceServicer_to_server(Traces(), server)
    mgrpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")  # h2c, no TLS
    server.start()
    return server, bound


def main():
    global _out
    ap = argparse.ArgumentParser()
    ap.add_argument("--http-port", type=int, default=0)
    ap.add_argument("--grpc-port", type=int, default=0)
    ap.add_argument("--no-grpc", action="store_true")
    ap.add_argument("--out", help="JSON-lines file (default stdout)")
    ap.add_argument("--check", action="store_true", help="start, print ports, stop")
    a = ap.parse_args()
    if a.out:
        _out = open(a.out, "a", encoding="utf-8")
    httpd = ThreadingHTTPServer(("127.0.0.1", a.http_port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    grpc_server, grpc_port = (None, 0) if a.no_grpc else start_grpc(a.grpc_port)
    print(f"listening http={httpd.server_address[1]} grpc={grpc_port}", flush=True)
    try:
        if a.check:
            return
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.shutdown()
        if grpc_server is not None:
            grpc_server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
