//! The one `bindgen!` for the provider contract in `wit/`.

// Every Warden interface and no WASI: the host links WASI from
// `wasmtime-wasi` itself. A plugin may leave `session-handler` and
// `discovery` out.
wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package warden:host-view;
        world host-view {
            import warden:provider/host@0.1.0;
            import warden:provider/http-client@0.1.0;
            export warden:provider/provider@0.1.0;
            export warden:provider/session-handler@0.1.0;
            export warden:provider/discovery@0.1.0;
            export warden:provider/cleanup@0.1.0;
        }
    ",
    world: "warden:host-view/host-view",
    imports: {
        "warden:provider/http-client": async | trappable,
        "warden:provider/host.lookup-service": async,
    },
    exports: { default: async },
    with: { "warden:provider/http-client.body": ResponseBody },
});

/// A response body handed to a guest by `http-client.send`: the resource
/// `warden:provider/http-client.body` (read by the sandbox).
pub struct ResponseBody {
    pub(crate) body: wasmtime_wasi_http::WasiBody,
    /// Longest wait for each chunk.
    pub(crate) wait: std::time::Duration,
    /// The end was seen (or the body failed): later reads return `none`.
    pub(crate) done: bool,
}
