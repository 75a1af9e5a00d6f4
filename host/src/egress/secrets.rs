//! Secret placeholders (`{{secret:NAME}}`) in header values, substituted
//! at egress for destinations the secret is bound to.

use super::*;

/// Replaces each `{{secret:NAME}}` in `text` with `lookup(NAME)`.
pub(super) fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(SECRET_OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + SECRET_OPEN.len()..];
        let end = after
            .find("}}")
            .ok_or("unterminated `{{secret:` placeholder")?;
        out.push_str(&lookup(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted_or_refused() {
        let lookup = |n: &str| {
            if n == "A" {
                Ok("va".to_string())
            } else {
                Err(format!("secret `{n}` is not granted"))
            }
        };
        assert_eq!(
            substitute("Bearer {{secret:A}}", lookup).unwrap(),
            "Bearer va"
        );
        assert_eq!(
            substitute("{{secret:A}}:{{secret: A }}", lookup).unwrap(),
            "va:va"
        );
        assert!(substitute("x {{secret:B}}", lookup)
            .unwrap_err()
            .contains("`B`"));
        assert!(substitute("x {{secret:A", lookup).is_err());
        assert_eq!(substitute("plain", lookup).unwrap(), "plain");
    }
}
