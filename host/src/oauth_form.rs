//! A form POST to an OAuth 2.1 endpoint (token exchange, introspection):
//! the client authenticated as RFC 6749 §2.3.1 says, the answer read up to
//! a bound. Shared by the host's token exchange and `warden serve`'s
//! introspection.

/// The client a form POST authenticates as.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client id.
    pub id: &'a str,
    /// Its secret; `None` for a public client (`client_id` goes in the form).
    pub secret: Option<&'a str>,
}

/// POSTs `form` to `url` as `client`: HTTP Basic with the form-encoded id
/// and secret, or `client_id` in the form for a public client. Returns the
/// answer's status and body, or why there is none (a body over `max`
/// bytes is an error).
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    client: Client<'_>,
    max: usize,
) -> Result<(http::StatusCode, Vec<u8>), String> {
    // Built apart: the serializer is not `Sync`, and this future is sent.
    let text = {
        let mut text = url::form_urlencoded::Serializer::new(String::new());
        text.extend_pairs(form);
        if client.secret.is_none() {
            text.append_pair("client_id", client.id);
        }
        text.finish()
    };
    let mut request = http
        .post(url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(text);
    if let Some(secret) = client.secret {
        request = request.basic_auth(form_encode(client.id), Some(form_encode(secret)));
    }
    let mut answer = request.send().await.map_err(|e| e.to_string())?;
    let status = answer.status();
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// RFC 6749 §2.3.1: the client id and secret are form-encoded before Basic.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
