//! Rule regexes use ASCII `\d`, `\w`, `\s` (and their negations): log text is ASCII where
//! these classes are used (hosts, ports, ids), and the Unicode versions make every regex
//! several times larger to compile and slower to run. The pattern is parsed, each Perl class
//! is replaced by the equivalent ASCII class (`[[:digit:]]`, `[[:word:]]`, `[[:space:]]`),
//! and the pattern is printed back.

use regex_syntax::ast::{
    self, Ast, ClassAscii, ClassAsciiKind, ClassBracketed, ClassPerl, ClassPerlKind, ClassSet,
    ClassSetItem,
};

/// `pattern` with its Perl classes made ASCII; unchanged if it does not parse (the regex
/// compiler then reports the error).
pub fn ascii_perl_classes(pattern: &str) -> String {
    let Ok(mut parsed) = ast::parse::Parser::new().parse(pattern) else {
        return pattern.to_string();
    };
    rewrite(&mut parsed);
    let mut out = String::new();
    match ast::print::Printer::new().print(&parsed, &mut out) {
        Ok(()) => out,
        Err(_) => pattern.to_string(),
    }
}

fn ascii_of(p: &ClassPerl) -> ClassAscii {
    ClassAscii {
        span: p.span,
        kind: match p.kind {
            ClassPerlKind::Digit => ClassAsciiKind::Digit,
            ClassPerlKind::Space => ClassAsciiKind::Space,
            ClassPerlKind::Word => ClassAsciiKind::Word,
        },
        negated: p.negated,
    }
}

fn rewrite(a: &mut Ast) {
    match a {
        Ast::ClassPerl(p) => {
            let span = p.span;
            *a = Ast::class_bracketed(ClassBracketed {
                span,
                negated: false,
                kind: ClassSet::Item(ClassSetItem::Ascii(ascii_of(p))),
            });
        }
        Ast::ClassBracketed(b) => rewrite_set(&mut b.kind),
        Ast::Repetition(r) => rewrite(&mut r.ast),
        Ast::Group(g) => rewrite(&mut g.ast),
        Ast::Alternation(alt) => alt.asts.iter_mut().for_each(rewrite),
        Ast::Concat(c) => c.asts.iter_mut().for_each(rewrite),
        Ast::Empty(_)
        | Ast::Flags(_)
        | Ast::Literal(_)
        | Ast::Dot(_)
        | Ast::Assertion(_)
        | Ast::ClassUnicode(_) => {}
    }
}

fn rewrite_set(s: &mut ClassSet) {
    match s {
        ClassSet::Item(item) => rewrite_item(item),
        ClassSet::BinaryOp(op) => {
            rewrite_set(&mut op.lhs);
            rewrite_set(&mut op.rhs);
        }
    }
}

fn rewrite_item(item: &mut ClassSetItem) {
    match item {
        ClassSetItem::Perl(p) => *item = ClassSetItem::Ascii(ascii_of(p)),
        ClassSetItem::Bracketed(b) => rewrite_set(&mut b.kind),
        ClassSetItem::Union(u) => u.items.iter_mut().for_each(rewrite_item),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::ascii_perl_classes as a;

    #[test]
    fn perl_classes_become_ascii_everywhere() {
        assert_eq!(a(r"\d+"), "[[:digit:]]+");
        assert_eq!(a(r"[\w.-]+:\d+"), "[[:word:].-]+:[[:digit:]]+");
        assert_eq!(a(r"\S+\s"), "[[:^space:]]+[[:space:]]");
        assert_eq!(a(r"(?P<x>[^\s/:]+)"), "(?P<x>[^[:space:]/:]+)");
        assert_eq!(a(r"\\d"), r"\\d", "an escaped backslash is not a class");
        assert_eq!(a("("), "(", "unparsable patterns are left to the compiler");
        let re = regex::Regex::new(&a(r"(?P<h>[\w.-]+):(?P<p>\d+)")).unwrap();
        let c = re.captures("to nn1.example.com:8020 failed").unwrap();
        assert_eq!(&c["h"], "nn1.example.com");
        assert_eq!(&c["p"], "8020");
        assert!(
            !regex::Regex::new(&a(r"^\d$")).unwrap().is_match("٣"),
            "Arabic-Indic digit"
        );
    }
}
