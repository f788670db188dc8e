//! Plugin IPC: frames as the daemon reads them from a worker (`FromWorker`) and as a worker
//! reads them from the daemon (`ToWorker`), each decoded message re-encoded and decoded again,
//! and the JSON inside (host requests, plugin answers) decoded as the daemon's plugin host does.
#![no_main]

use countersign_plugin_ipc::{read_frame, write_frame, Frame, FromWorker, IpcError, ToWorker};

fn frames<T: Frame + PartialEq + std::fmt::Debug>(data: &[u8], mut each: impl FnMut(&T)) {
    let mut r = data;
    // At most as many frames as there are 5-byte headers: every frame consumes at least 4 bytes.
    for _ in 0..=data.len() / 4 {
        match read_frame::<T>(&mut r) {
            Ok(Some(msg)) => {
                let mut wire = Vec::new();
                if write_frame(&mut wire, &msg).is_ok() {
                    let again = read_frame::<T>(&mut wire.as_slice());
                    assert!(
                        matches!(&again, Ok(Some(m)) if *m == msg),
                        "frame does not round-trip: {msg:?} -> {again:?}"
                    );
                }
                each(&msg);
            }
            Ok(None) | Err(IpcError::Io(_)) | Err(IpcError::Frame(_)) => return,
            Err(e) => panic!("reading from memory cannot fail this way: {e}"),
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = FromWorker::decode(data);
    let _ = ToWorker::decode(data);
    frames::<FromWorker>(data, |m| match m {
        FromWorker::HostCall { request } => countersign::fuzzing::plugin_messages(request),
        FromWorker::Done { response, .. } => countersign::fuzzing::plugin_messages(response),
        FromWorker::Ready { .. } => {}
    });
    frames::<ToWorker>(data, |_| {});
});
