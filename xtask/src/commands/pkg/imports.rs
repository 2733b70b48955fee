//! Short import names for the browser module.
//!
//! wasm-bindgen names each import the JS glue hands to the module `__wbg_<method>_<16 hex digits>`, from the module
//! `./<crate>_bg.js`. The names are written twice (the `.wasm`'s import section and the glue's import object), and
//! the hashes do not compress: 99 of them were 3 KB of the 51 KB gzipped package. Here every import becomes `a`, `b`,
//! ... `ba`, ... from the module `w`, in the `.wasm` and in the glue alike. Exports keep their names: they are the
//! glue's `InitOutput`, which `init()` gives to the page.

use anyhow::{Context, bail};

/// The import module every renamed import comes from.
pub(crate) const MODULE: &str = "w";

/// One import renamed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Renamed {
    pub(crate) old: String,
    pub(crate) new: String,
}

/// The module with its imports renamed, the module they all came from, and each rename.
#[derive(Debug)]
pub(crate) struct Shortened {
    pub(crate) wasm: Vec<u8>,
    pub(crate) module: String,
    pub(crate) renamed: Vec<Renamed>,
}

/// The `n`th short name: `a`..`z`, `A`..`Z`, then `aa`, `ab`, ... (each a JS identifier).
pub(crate) fn short_name(mut n: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut name = Vec::new();
    loop {
        name.push(LETTERS[n % LETTERS.len()]);
        n /= LETTERS.len();
        if n == 0 {
            break;
        }
        n -= 1;
    }
    name.reverse();
    String::from_utf8(name).expect("ASCII letters")
}

/// A reader over a section's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> anyhow::Result<u8> {
        let b = *self
            .bytes
            .get(self.at)
            .context("the module ends inside a section")?;
        self.at += 1;
        Ok(b)
    }

    fn leb(&mut self) -> anyhow::Result<u32> {
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(value).context("a LEB128 number over 32 bits");
            }
        }
        bail!("a LEB128 number longer than 5 bytes")
    }

    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.context("the module ends inside a section")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn name(&mut self) -> anyhow::Result<&'a str> {
        let len = self.leb()? as usize;
        std::str::from_utf8(self.take(len)?).context("an import name that is not UTF-8")
    }

    /// Skips limits (of a table or a memory).
    fn limits(&mut self) -> anyhow::Result<()> {
        let flags = self.byte()?;
        self.leb()?;
        if flags & 1 != 0 {
            self.leb()?;
        }
        Ok(())
    }
}

fn leb(mut n: u32, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn name(s: &str, out: &mut Vec<u8>) {
    leb(s.len() as u32, out);
    out.extend_from_slice(s.as_bytes());
}

/// Renames every import of `wasm` (all from one module, as wasm-bindgen writes them) to a short name from
/// [`MODULE`]; every other section is copied as it is.
pub(crate) fn shorten(wasm: &[u8]) -> anyhow::Result<Shortened> {
    if wasm.get(..4) != Some(b"\0asm") || wasm.len() < 8 {
        bail!("not a WebAssembly module");
    }
    let mut out = wasm[..8].to_vec();
    let mut reader = Reader { bytes: wasm, at: 8 };
    let mut module = None;
    let mut renamed = Vec::new();
    while reader.at < wasm.len() {
        let id = reader.byte()?;
        let size = reader.leb()? as usize;
        let body = reader.take(size)?;
        if id != 2 {
            out.push(id);
            leb(size as u32, &mut out);
            out.extend_from_slice(body);
            continue;
        }
        if module.is_some() {
            bail!("two import sections");
        }
        let mut section = Reader { bytes: body, at: 0 };
        let count = section.leb()?;
        let mut new_body = Vec::new();
        leb(count, &mut new_body);
        for index in 0..count as usize {
            let from = section.name()?;
            let field = section.name()?;
            match &module {
                None => module = Some(from.to_owned()),
                Some(first) if first != from => {
                    bail!("imports from two modules, `{first}` and `{from}`: only one is renamed")
                }
                Some(_) => {}
            }
            let kind_at = section.at;
            match section.byte()? {
                // A function, or a tag: a type index (a tag after its attribute byte).
                0x00 => {
                    section.leb()?;
                }
                0x04 => {
                    section.byte()?;
                    section.leb()?;
                }
                // A table: its element type, then limits.
                0x01 => {
                    section.byte()?;
                    section.limits()?;
                }
                0x02 => section.limits()?,
                // A global: its value type and mutability.
                0x03 => {
                    section.take(2)?;
                }
                other => bail!("import `{field}` has an unknown kind {other:#x}"),
            }
            let new = short_name(index);
            name(MODULE, &mut new_body);
            name(&new, &mut new_body);
            new_body.extend_from_slice(&body[kind_at..section.at]);
            renamed.push(Renamed {
                old: field.to_owned(),
                new,
            });
        }
        if section.at != body.len() {
            bail!(
                "the import section has {} bytes after its imports",
                body.len() - section.at
            );
        }
        out.push(id);
        leb(new_body.len() as u32, &mut out);
        out.extend_from_slice(&new_body);
    }
    Ok(Shortened {
        wasm: out,
        module: module.unwrap_or_default(),
        renamed,
    })
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Where `word` stands as a whole identifier in `text`.
fn whole_words<'a>(text: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(word)
        .map(|(at, _)| at)
        .filter(move |&at| !text[..at].ends_with(is_ident) && !text[at + word.len()..].starts_with(is_ident))
}

/// The glue with the same renames: its import object is keyed `"<module>": import0` and holds each import as a
/// property `<name>: function ...`. Each old name must stand exactly once in the glue, as that property.
pub(crate) fn rename_in_glue(glue: &str, shortened: &Shortened) -> anyhow::Result<String> {
    let module_key = format!("\"{}\": import0", shortened.module);
    if glue.matches(&module_key).count() != 1 {
        bail!("the glue does not key its imports `{module_key}` once: wasm-bindgen changed its output");
    }
    let mut glue = glue.replacen(&module_key, &format!("{MODULE}: import0"), 1);
    for Renamed { old, new } in &shortened.renamed {
        let found: Vec<usize> = whole_words(&glue, old).collect();
        let [at] = found[..] else {
            bail!("`{old}` stands {} times in the glue, not once", found.len());
        };
        if !glue[at + old.len()..].trim_start().starts_with(':') {
            bail!("`{old}` is not a property of the glue's import object");
        }
        glue.replace_range(at..at + old.len(), new);
    }
    Ok(glue)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module importing two functions and a memory from `./m_bg.js`, with a type section before and a custom
    /// section after.
    fn module() -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        // Type section: one type, () -> ().
        wasm.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]);
        let mut imports = Vec::new();
        leb(3, &mut imports);
        for field in ["__wbg_alert_0123456789abcdef", "__wbg_log_fedcba9876543210"] {
            name("./m_bg.js", &mut imports);
            name(field, &mut imports);
            imports.extend_from_slice(&[0x00, 0x00]);
        }
        name("./m_bg.js", &mut imports);
        name("__wbindgen_memory", &mut imports);
        imports.extend_from_slice(&[0x02, 0x01, 0x01, 0x80, 0x01]);
        wasm.push(2);
        leb(imports.len() as u32, &mut wasm);
        wasm.extend_from_slice(&imports);
        let mut custom = Vec::new();
        name("note", &mut custom);
        custom.extend_from_slice(b"kept");
        wasm.push(0);
        leb(custom.len() as u32, &mut wasm);
        wasm.extend_from_slice(&custom);
        wasm
    }

    #[test]
    fn short_names_are_distinct_identifiers() {
        let names: Vec<String> = (0..3000).map(short_name).collect();
        assert_eq!(names[..3], ["a", "b", "c"]);
        assert_eq!(names[51], "Z");
        assert_eq!(names[52], "aa");
        assert_eq!(names[53], "ab");
        let distinct: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_alphabetic())));
    }

    #[test]
    fn renames_every_import_and_keeps_the_rest() {
        let wasm = module();
        let short = shorten(&wasm).unwrap();
        assert_eq!(short.module, "./m_bg.js");
        let pairs: Vec<(&str, &str)> = short
            .renamed
            .iter()
            .map(|r| (r.old.as_str(), r.new.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("__wbg_alert_0123456789abcdef", "a"),
                ("__wbg_log_fedcba9876543210", "b"),
                ("__wbindgen_memory", "c")
            ]
        );
        let mut expected = b"\0asm\x01\0\0\0".to_vec();
        expected.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]);
        expected.extend_from_slice(&[2, 22, 3]);
        expected.extend_from_slice(&[1, b'w', 1, b'a', 0x00, 0x00]);
        expected.extend_from_slice(&[1, b'w', 1, b'b', 0x00, 0x00]);
        expected.extend_from_slice(&[1, b'w', 1, b'c', 0x02, 0x01, 0x01, 0x80, 0x01]);
        expected.extend_from_slice(&[0, 9, 4, b'n', b'o', b't', b'e', b'k', b'e', b'p', b't']);
        assert_eq!(short.wasm, expected);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(shorten(b"not wasm").is_err());
        let mut cut = module();
        cut.truncate(cut.len() - 3);
        assert!(shorten(&cut).is_err(), "a section cut short");
        let mut two = module();
        let at = two.windows(9).rposition(|w| w == b"./m_bg.js").unwrap();
        two[at + 2] = b'n';
        let err = shorten(&two).unwrap_err().to_string();
        assert!(err.contains("two modules"), "{err}");
    }

    #[test]
    fn the_glue_gets_the_same_names() {
        let short = shorten(&module()).unwrap();
        let glue = r#"const import0 = {
    __wbg_alert_0123456789abcdef: function(a) { alert(a); },
    __wbg_log_fedcba9876543210 : function(a) { console.log(a); },
    __wbindgen_memory: function() { return wasm.__wbindgen_memory_x; },
};
return { "./m_bg.js": import0 };"#;
        let renamed = rename_in_glue(glue, &short).unwrap();
        assert_eq!(
            renamed,
            r#"const import0 = {
    a: function(a) { alert(a); },
    b : function(a) { console.log(a); },
    c: function() { return wasm.__wbindgen_memory_x; },
};
return { w: import0 };"#
        );
    }

    #[test]
    fn the_glue_must_name_each_import_once_as_a_property() {
        let short = shorten(&module()).unwrap();
        let glue =
            |body: &str| format!("const import0 = {{ {body} }};\nreturn {{ \"./m_bg.js\": import0 }};");
        let all = "__wbg_alert_0123456789abcdef: f, __wbg_log_fedcba9876543210: f, __wbindgen_memory: f";
        assert!(rename_in_glue(&glue(all), &short).is_ok());
        let missing = "__wbg_alert_0123456789abcdef: f, __wbindgen_memory: f";
        assert!(rename_in_glue(&glue(missing), &short).is_err());
        let twice = format!("{all}, x: __wbindgen_memory");
        assert!(rename_in_glue(&glue(&twice), &short).is_err());
        let not_a_key =
            "__wbg_alert_0123456789abcdef: f, g(__wbg_log_fedcba9876543210), __wbindgen_memory: f";
        assert!(rename_in_glue(&glue(not_a_key), &short).is_err());
        assert!(rename_in_glue(all, &short).is_err(), "no import object");
    }
}
