//! The masking corpus (`tests/fixtures/masking/corpus.toml`): no sensitive value survives
//! masking, and unmasking restores every line exactly.

use faultline::llm::mask::Masker;

#[path = "support/masking_corpus.rs"]
mod masking_corpus;

#[test]
fn no_sensitive_value_survives_masking() {
    let corpus = masking_corpus::load();
    assert!(corpus.case.len() >= 20);
    let mut leaks = Vec::new();
    for c in &corpus.case {
        let m = Masker::new(&c.known_hosts, &[]).unwrap();
        let masked = m.mask(&c.line);
        for s in &c.secrets {
            if masked.text.contains(s.as_str()) {
                leaks.push(format!("{s:?} left in {:?}", masked.text));
            }
        }
        assert_eq!(masked.unmask(&masked.text), c.line, "round trip");
    }
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
