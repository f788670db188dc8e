//! `api-call SOCKET METHOD PATH [JSON]`: one request on a Unix socket, printed as
//! `{"status": N, "body": ...}`. Tests run it under other uids to exercise SO_PEERCRED checks.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(sock), Some(method), Some(path)) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: api-call SOCKET METHOD PATH [JSON]");
    };
    let body = args.next().map(String::into_bytes);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, bytes) = rt.block_on(async {
        let mut c = countersign_client::Connection::connect(&PathBuf::from(sock)).await?;
        anyhow::Ok(c.raw(method.parse()?, &path, body).await?)
    })?;
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    println!("{}", serde_json::json!({ "status": status.as_u16(), "body": body }));
    Ok(())
}
