//! Serves one virtual YubiKey until killed, for poking at it with real clients by hand.
//!
//! `vyubikey [--port PORT] [--serial N] [--firmware 5.4.3]`: with `--port`, the card connects
//! to an existing vpcd reader on that port; without it, a private pcscd with one vpcd entry is
//! started and the `PCSCLITE_CSOCK_NAME=...` line to use with clients is printed. The test root
//! certificate is printed so attestations can be checked. Stops on Enter or end of input.
// Reason: a developer tool; exiting with a message on bad arguments is the intent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use countersign_vcard::{CardSpec, Pcscd, TestRoot, VirtualYubiKey};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut port, mut serial, mut firmware) = (None, 12_345_678u32, (5u8, 4u8, 3u8));
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = Some(value.parse::<u16>().expect("--port PORT")),
            "--serial" => serial = value.parse().expect("--serial N"),
            "--firmware" => {
                let v: Vec<u8> = value.split('.').map(|p| p.parse().expect("--firmware X.Y.Z")).collect();
                firmware = (v[0], v[1], v[2]);
            }
            _ => panic!("usage: vyubikey [--port PORT] [--serial N] [--firmware X.Y.Z]"),
        }
    }
    let root = TestRoot::generate("vyubikey test root");
    print!("{}", root.cert_pem());
    let card = VirtualYubiKey::new(CardSpec::new(serial, firmware), &root);
    let pcscd = match port {
        Some(p) => {
            card.insert(p).expect("connect to vpcd");
            None
        }
        None => {
            let pcscd = Pcscd::start(1).expect("start pcscd");
            let reader = pcscd.readers()[0].clone();
            card.insert(reader.port).expect("connect to vpcd");
            pcscd.wait_for_card_state(&reader.name, true, Duration::from_secs(10)).expect("card seen");
            let (k, v) = pcscd.env();
            println!("{k}={}  # reader {:?}", v.display(), reader.name);
            Some(pcscd)
        }
    };
    println!(
        "serving YubiKey {serial} ({}.{}.{}); press Enter (or close stdin) to stop",
        firmware.0, firmware.1, firmware.2
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        let _ = tx.send(());
    });
    // Stop on Enter / EOF, or when the reader side goes away. (Killed by a signal instead, the
    // private pcscd is left running.)
    while card.is_inserted() && rx.recv_timeout(Duration::from_millis(200)).is_err() {}
    card.remove();
    drop(pcscd);
}
