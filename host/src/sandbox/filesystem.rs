//! `wasi:filesystem` `open-at`, audited, counted, and never blocking.

use crate::governance::audit::{Effect, Outcome};
use wasmtime::component::Resource;

use super::descriptors::Kind;
use super::*;

/// Replaces `wasi:filesystem` `open-at` with the same call plus:
/// - an audit record: every file or directory a guest opens (or is
///   refused) is logged;
/// - the plugin's `limits.max-files`: past it the guest gets `quota`;
/// - a refusal (`not-permitted`) of anything but regular files, directories
///   and symbolic links: opening a FIFO or a device can block a host thread
///   for good, past the call's time limit, where nothing can interrupt it.
pub(crate) fn add_audited_open_at(
    linker: &mut wasmtime::component::Linker<State>,
) -> wasmtime::Result<()> {
    use wasmtime_wasi::filesystem::WasiFilesystemView;
    use wasmtime_wasi::p2::bindings::filesystem::types::{
        Descriptor, DescriptorFlags, DescriptorType, ErrorCode, HostDescriptor, OpenFlags,
        PathFlags,
    };
    type Args = (
        Resource<Descriptor>,
        PathFlags,
        String,
        OpenFlags,
        DescriptorFlags,
    );
    let mut instance = linker.instance("wasi:filesystem/types@0.2.12")?;
    instance.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: wasmtime::StoreContextMut<'_, State>,
         (fd, path_flags, path, oflags, flags): Args| {
            Box::new(async move {
                let state = store.data_mut();
                let writes = flags.contains(DescriptorFlags::WRITE)
                    || oflags.contains(OpenFlags::CREATE)
                    || oflags.contains(OpenFlags::TRUNCATE);
                let target = format!("{} {path}", if writes { "write" } else { "read" });
                // What is there now (nothing, for a file about to be created).
                let existing = {
                    let mut view = state.filesystem();
                    let borrowed = Resource::<Descriptor>::new_borrow(fd.rep());
                    HostDescriptor::stat_at(&mut view, borrowed, path_flags, path.clone())
                        .await
                        .ok()
                        .map(|stat| stat.type_)
                };
                // FIFOs and sockets are `unknown` to WASI.
                if let Some(kind) = existing.filter(|k| {
                    !matches!(
                        k,
                        DescriptorType::RegularFile
                            | DescriptorType::Directory
                            | DescriptorType::SymbolicLink
                    )
                }) {
                    let kind = match kind {
                        DescriptorType::Unknown => "a FIFO or socket".to_string(),
                        other => format!("{other:?}"),
                    };
                    let reason =
                        format!("special file ({kind}) refused: opening it could block the host");
                    state
                        .auditor
                        .record(Effect::File, &target, Outcome::Deny, &reason);
                    return Ok((Err(ErrorCode::NotPermitted),));
                }
                if !state.take_descriptor(Kind::File, &target) {
                    return Ok((Err(ErrorCode::Quota),));
                }
                let result = {
                    let mut view = state.filesystem();
                    HostDescriptor::open_at(&mut view, fd, path_flags, path.clone(), oflags, flags)
                        .await
                };
                let result = match result {
                    Ok(fd) => Ok(fd),
                    Err(e) => {
                        state.give_back_descriptor(Kind::File);
                        Err(e.downcast()?)
                    }
                };
                let (decision, reason) = match &result {
                    Ok(_) => (Outcome::Allow, "within a granted directory".to_string()),
                    Err(
                        code @ (ErrorCode::NotPermitted
                        | ErrorCode::Access
                        | ErrorCode::ReadOnly
                        | ErrorCode::Loop),
                    ) => (
                        Outcome::Deny,
                        format!("outside the plugin's grants ({})", code.name()),
                    ),
                    Err(code) => (Outcome::Allow, format!("failed: {}", code.name())),
                };
                if !state
                    .auditor
                    .record(Effect::File, &target, decision, &reason)
                    && result.is_ok()
                {
                    return Ok((Err(ErrorCode::Access),));
                }
                Ok((result,))
            })
        },
    )?;
    Ok(())
}
