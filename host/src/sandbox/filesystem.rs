//! `wasi:filesystem` `open-at`, audited, counted, and never blocking.

use crate::audit::{Effect, Outcome};
use wasmtime::component::Resource;

use super::*;
use crate::limits::Kind;

mod open;

/// Replaces `wasi:filesystem` `open-at` (and `read-directory`) with the
/// same call plus:
/// - an audit record: every file or directory a guest opens (or is
///   refused) is logged;
/// - the plugin's `limits.max-files`: past it the guest gets `quota`;
/// - a refusal (`not-permitted`) of anything but regular files and
///   directories, decided on the opened object: the path is opened with
///   `O_NONBLOCK` (and without following a final symbolic link unless the
///   guest asked to), then its type is read with `fstat` on the descriptor.
///   Opening a FIFO or a device without `O_NONBLOCK` can block a host thread
///   for good, and a check made on the path before the open could be raced
///   by a rename.
pub(crate) fn add_audited_open_at(
    linker: &mut wasmtime::component::Linker<State>,
) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::filesystem::types::{
        Descriptor, DescriptorFlags, OpenFlags, PathFlags,
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
                let parent = match state.table.get(&fd)? {
                    wasmtime_wasi::filesystem::Descriptor::Dir(d) => d.clone(),
                    wasmtime_wasi::filesystem::Descriptor::File(_) => {
                        return Ok((Err(ErrorCode::NotDirectory),));
                    }
                };
                if !state.take_descriptor(Kind::File, &target) {
                    return Ok((Err(ErrorCode::Quota),));
                }
                let request = open::Request::new(path_flags, path, oflags, flags);
                let opened = open::open_at(&parent, request).await;
                Ok((finish_open(state, &target, opened).await?,))
            })
        },
    )?;
    instance.func_wrap_async(
        "[method]descriptor.read-directory",
        |mut store: wasmtime::StoreContextMut<'_, State>, (fd,): (Resource<Descriptor>,)| {
            Box::new(async move {
                use wasmtime_wasi::filesystem::WasiFilesystemView;
                use wasmtime_wasi::p2::bindings::filesystem::types::HostDescriptor;
                let state = store.data_mut();
                // The listing is held by the host until the guest drops it.
                if !state.take_descriptor(Kind::File, "read-directory") {
                    return Ok((Err(ErrorCode::Quota),));
                }
                match HostDescriptor::read_directory(&mut state.filesystem(), fd).await {
                    Ok(stream) => Ok((Ok(stream),)),
                    Err(e) => {
                        state.give_back_descriptor(Kind::File);
                        Ok((Err(e.downcast()?),))
                    }
                }
            })
        },
    )?;
    add_audited_changes(&mut instance)?;
    Ok(())
}

/// Audits an open, puts the opened descriptor in the guest's table and
/// charges it to the plugin; gives the slot back when nothing was opened.
async fn finish_open(
    state: &mut State,
    target: &str,
    opened: Result<open::Opened, ErrorCode>,
) -> wasmtime::Result<
    Result<Resource<wasmtime_wasi::p2::bindings::filesystem::types::Descriptor>, ErrorCode>,
> {
    let descriptor = match opened {
        Ok(open::Opened::Descriptor(d)) => d,
        Ok(open::Opened::Special(kind)) => {
            state.give_back_descriptor(Kind::File);
            let reason = format!("special file ({kind}) refused: opening it could block the host");
            state
                .auditor
                .record(Effect::File, target, Outcome::Deny, &reason);
            return Ok(Err(ErrorCode::NotPermitted));
        }
        Err(code) => {
            state.give_back_descriptor(Kind::File);
            let (decision, reason) = judged(Err(code));
            state
                .auditor
                .record(Effect::File, target, decision, &reason);
            return Ok(Err(code));
        }
    };
    let (decision, reason) = judged(Ok(()));
    // Awaited without holding the thread.
    let recorded = state
        .auditor
        .record_async(Effect::File, target, decision, &reason);
    if !recorded.done().await {
        state.give_back_descriptor(Kind::File);
        return Ok(Err(ErrorCode::Access));
    }
    state.held.opened(open::handle_of(&descriptor));
    Ok(Ok(state.table.push(descriptor)?))
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
/// The record is queued at once and awaited without holding the thread.
fn record_change(
    state: &State,
    target: &str,
    result: Result<(), ErrorCode>,
) -> impl std::future::Future<Output = Result<(), ErrorCode>> + Send + 'static {
    let (decision, reason) = judged(result);
    let recorded = state
        .auditor
        .record_async(Effect::File, target, decision, &reason);
    async move {
        recorded.done().await;
        result
    }
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
        Ok((record_change(state, &target, result).await,))
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
