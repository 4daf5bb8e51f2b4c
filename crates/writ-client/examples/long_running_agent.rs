//! The Rust example of the README's "Use writ from a long-running agent", verbatim between
//! the markers (a test compares them), so it compiles with every `cargo test`. Run it next
//! to `writ serve --demo` after registering `support-bot` as the README shows:
//! `cargo run -p writ-client --example long_running_agent`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // README begin
    use writ_client::WritSource;

    let grants = serde_json::json!([{"type": "writ:llm", "upstream": "demo", "actions": ["chat"], "models": ["gpt-4o-mini"]}]);
    let writs = WritSource::builder("http://127.0.0.1:8787/oauth2/token", "support-bot")
        .private_key_pem(&std::fs::read_to_string("support-bot.pem")?)?
        .grants(&grants)?
        .build()?;
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]});
    let request = reqwest::Client::new()
        .post("http://127.0.0.1:8787/v1/chat/completions")
        .json(&body);
    let reply = writs.send(request).await?;
    // README end
    println!("{}", reply.text().await?);
    Ok(())
}
