//! `oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]`: where a component lives in
//! an OCI registry. The registry is always named (no implied Docker Hub).

use std::fmt;

/// The scheme that marks a component source as an OCI reference.
pub const SCHEME: &str = "oci://";

/// A parsed `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciRef {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// The repository path inside the registry.
    pub repository: String,
    /// The tag, if one is named.
    pub tag: Option<String>,
    /// The manifest digest (`sha256:…`), if one is named.
    pub digest: Option<String>,
}

impl OciRef {
    /// Whether `source` names an OCI reference rather than a file.
    pub fn is_oci(source: &str) -> bool {
        source.starts_with(SCHEME)
    }

    /// Parses `oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]`; a reference with
    /// neither tag nor digest means `:latest`.
    pub fn parse(source: &str) -> Result<OciRef, String> {
        let bad = |why: &str| format!("`{source}` is not an OCI reference: {why}");
        let rest = source
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it must start with `oci://`"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("expected oci://HOST[:PORT]/REPOSITORY[:TAG]"))?;
        check_registry(registry).map_err(|w| bad(&w))?;
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => (p, Some(check_digest(d).map_err(|w| bad(&w))?)),
            None => (path, None),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t)),
            _ => (path, None),
        };
        check_repository(repository).map_err(|w| bad(&w))?;
        if let Some(t) = tag {
            check_tag(t).map_err(|w| bad(&w))?;
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(OciRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The same repository at `digest`, without a tag.
    pub fn at_digest(&self, digest: &str) -> OciRef {
        OciRef {
            digest: Some(digest.to_string()),
            tag: None,
            ..self.clone()
        }
    }

    /// The same repository at `tag`, without a digest.
    pub fn at_tag(&self, tag: &str) -> OciRef {
        OciRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// `HOST[:PORT]/REPO`, as cosign's payload names the image.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The reference in `oci-client`'s form.
    pub(crate) fn to_client(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.clone(),
            ),
            (None, Some(d)) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.clone(),
            ),
            (t, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `HOST[:PORT]`: a DNS name or IP address, and a port if any.
pub(crate) fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (registry, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("registry port `{p}` is not a port number"));
        }
    }
    let name_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if !name_ok {
        return Err(format!("registry `{registry}` is not HOST[:PORT]"));
    }
    Ok(())
}

/// Lower-case path components of `[a-z0-9]` separated by `.`, `_`, `__`
/// or `-`, joined by `/` (the distribution specification's name grammar).
fn check_repository(repository: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.chars().all(|ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
            })
            && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
    };
    if repository.len() > 255 || !repository.split('/').all(component_ok) {
        return Err(format!(
            "repository `{repository}` must be lower-case letters, digits and `._-`, joined by `/`"
        ));
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("tag `{tag}` must be up to 128 of `A-Za-z0-9_.-`"))
    }
}

/// `sha256:` and 64 lower-case hex digits.
pub(crate) fn check_digest(digest: &str) -> Result<String, String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(digest.to_string())
        }
        _ => Err(format!(
            "digest `{digest}` must be `sha256:` and 64 lower-case hex digits"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_tag_digest_or_both() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = OciRef::parse("oci://127.0.0.1:5000/team/text:1.2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/text", Some("1.2"))
        );
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/team/text:1.2");
        let r = OciRef::parse(&format!("oci://ghcr.io/a/b@{d}")).unwrap();
        assert_eq!((r.tag, r.digest.as_deref()), (None, Some(d.as_str())));
        let r = OciRef::parse("oci://localhost/x").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = OciRef::parse(&format!("oci://h:1/x:v@{d}")).unwrap();
        assert_eq!(r.to_string(), format!("oci://h:1/x:v@{d}"));
    }

    #[test]
    fn what_is_not_a_reference_says_why() {
        for (bad, why) in [
            ("plugins/a.wasm", "oci://"),
            ("oci://host-only", "HOST[:PORT]/REPOSITORY"),
            ("oci://h:99999/x", "port"),
            ("oci://h/Upper", "lower-case"),
            ("oci://h/a//b", "lower-case"),
            ("oci://h/x:bad tag", "tag"),
            ("oci://h/x@sha256:12", "digest"),
            ("oci://h/x@md5:00", "digest"),
            ("oci://h user/x", "HOST[:PORT]"),
        ] {
            let e = OciRef::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
