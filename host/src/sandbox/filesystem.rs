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
                let (decision, reason) = judged(result.as_ref().map(drop).map_err(|c| *c));
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
    add_audited_changes(&mut instance)?;
    Ok(())
}

use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;

/// What the outcome of a filesystem call says about the policy: allowed (it
/// worked, or failed for a reason of its own), or denied by the grants.
fn judged(result: Result<(), ErrorCode>) -> (Outcome, String) {
    match result {
        Ok(()) => (Outcome::Allow, "within a granted directory".to_string()),
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
    }
}

/// Records a change to a granted directory with its outcome.
fn record_change(
    state: &State,
    target: &str,
    result: Result<(), ErrorCode>,
) -> Result<(), ErrorCode> {
    let (decision, reason) = judged(result);
    state
        .auditor
        .record(Effect::File, target, decision, &reason);
    result
}

/// Whether a symbolic link's target stays inside the directory it is made
/// in, whatever that directory is: relative, and no `..` component.
fn contained_link_target(target: &str) -> bool {
    !target.starts_with('/') && !target.split('/').any(|c| c == "..")
}

/// `create-directory-at`, `remove-directory-at`, `unlink-file-at`,
/// `rename-at` and `symlink-at` with an audit record each; a symbolic link
/// whose target is absolute or climbs with `..` is refused (`not-permitted`),
/// and so is every hard link (`link-at`): a hard link can carry a file out
/// of a read-only grant into a writable one.
fn add_audited_changes(
    instance: &mut wasmtime::component::LinkerInstance<'_, State>,
) -> wasmtime::Result<()> {
    use wasmtime_wasi::filesystem::WasiFilesystemView;
    use wasmtime_wasi::p2::bindings::filesystem::types::{Descriptor, HostDescriptor, PathFlags};
    type Fd = Resource<Descriptor>;
    type Done = wasmtime::Result<(Result<(), ErrorCode>,)>;
    async fn finish(state: &mut State, target: String, r: wasmtime_wasi::p2::FsResult<()>) -> Done {
        let result = match r {
            Ok(()) => Ok(()),
            Err(e) => Err(e.downcast()?),
        };
        Ok((record_change(state, &target, result),))
    }
    instance.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store: wasmtime::StoreContextMut<'_, State>, (fd, path): (Fd, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let r =
                    HostDescriptor::create_directory_at(&mut state.filesystem(), fd, path.clone())
                        .await;
                finish(state, format!("mkdir {path}"), r).await
            })
        },
    )?;
    instance.func_wrap_async(
        "[method]descriptor.remove-directory-at",
        |mut store: wasmtime::StoreContextMut<'_, State>, (fd, path): (Fd, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let r =
                    HostDescriptor::remove_directory_at(&mut state.filesystem(), fd, path.clone())
                        .await;
                finish(state, format!("rmdir {path}"), r).await
            })
        },
    )?;
    instance.func_wrap_async(
        "[method]descriptor.unlink-file-at",
        |mut store: wasmtime::StoreContextMut<'_, State>, (fd, path): (Fd, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let r =
                    HostDescriptor::unlink_file_at(&mut state.filesystem(), fd, path.clone()).await;
                finish(state, format!("unlink {path}"), r).await
            })
        },
    )?;
    instance.func_wrap_async(
        "[method]descriptor.rename-at",
        |mut store: wasmtime::StoreContextMut<'_, State>,
         (fd, old, new_fd, new): (Fd, String, Fd, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let target = format!("rename {old} -> {new}");
                let r =
                    HostDescriptor::rename_at(&mut state.filesystem(), fd, old, new_fd, new).await;
                finish(state, target, r).await
            })
        },
    )?;
    instance.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store: wasmtime::StoreContextMut<'_, State>,
         (fd, target_path, link): (Fd, String, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let target = format!("symlink {link} -> {target_path}");
                if !contained_link_target(&target_path) {
                    state.auditor.record(
                        Effect::File,
                        &target,
                        Outcome::Deny,
                        "a symbolic link must point inside its own directory (relative, no `..`)",
                    );
                    return Ok((Err(ErrorCode::NotPermitted),));
                }
                let r = HostDescriptor::symlink_at(&mut state.filesystem(), fd, target_path, link)
                    .await;
                finish(state, target, r).await
            })
        },
    )?;
    instance.func_wrap_async(
        "[method]descriptor.link-at",
        |mut store: wasmtime::StoreContextMut<'_, State>,
         (_fd, _flags, old, _new_fd, new): (Fd, PathFlags, String, Fd, String)| {
            Box::new(async move {
                store.data_mut().auditor.record(
                    Effect::File,
                    &format!("link {new} -> {old}"),
                    Outcome::Deny,
                    "hard links are not allowed: one could carry a file out of a read-only grant",
                );
                Ok((Err::<(), _>(ErrorCode::NotPermitted),))
            })
        },
    )?;
    Ok(())
}
