//! The masking corpus (`tests/fixtures/masking/corpus.toml`), shared by the unit-level
//! masking test and the end-to-end test on the bytes an LLM server receives.

#[derive(serde::Deserialize)]
pub struct Corpus {
    pub case: Vec<Case>,
}

#[derive(serde::Deserialize)]
pub struct Case {
    pub line: String,
    pub secrets: Vec<String>,
    #[serde(default)]
    pub known_hosts: Vec<String>,
}

pub fn load() -> Corpus {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/masking/corpus.toml"
    );
    toml::from_str(&std::fs::read_to_string(path).expect("masking corpus")).expect("corpus TOML")
}
