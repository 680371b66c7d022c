//! The layers a configuration is read from: the TOML file, `WAGATE_…` variables (one for every
//! key) and flags, each over the one before, through config-rs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::settings::*;

impl Config {
    /// The defaults, overlaid with the TOML file (`config_file`, else `WAGATE_CONFIG`), then with
    /// the `WAGATE_` variables in `env`, then with `flags`. `env` is the process environment
    /// (`std::env::vars_os()`), or a map in tests.
    pub fn load(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        flags: &[Flag],
    ) -> Result<Loaded, ConfigError> {
        let keys = keys();
        let env = Environment::read(&keys, env)?;
        let mut from_flags = Overrides::default();
        for flag in flags.iter().filter(|f| !f.value.is_empty()) {
            let key = keys.iter().find(|k| k.path == flag.key).ok_or_else(|| {
                ConfigError::Invalid(format!("{} sets {}, which is not a setting", flag.name, flag.key))
            })?;
            from_flags.set(key, flag.name, flag.value.clone());
        }
        let file = config_file.map(Path::to_owned).or(env.config_file);
        let mut layers = config::Config::builder();
        if let Some(path) = &file {
            layers = layers.add_source(read_file(path)?);
        }
        let merged = layers
            .add_source(env.settings.clone())
            .add_source(from_flags.clone())
            .build()
            .and_then(config::Config::try_deserialize::<Self>);
        let config = merged.map_err(|e| setting_error(e, &[&from_flags, &env.settings]))?;
        Ok(Loaded { config, unknown_variables: env.unknown })
    }
}

/// `--config`'s variable: where the TOML file is, not a setting in it.
pub const CONFIG_FILE_VAR: &str = "WAGATE_CONFIG";

const ENV_PREFIX: &str = "WAGATE_";

/// Names older than the `WAGATE_<SECTION>__<KEY>` scheme, kept because scripts set them; when
/// both are set, the scheme's name wins.
const ALIASES: &[(&str, &str)] = &[
    ("WAGATE_SANDBOX_APP_SECRET", "sandbox.app_secret"),
    ("WAGATE_SANDBOX_VERIFY_TOKEN", "sandbox.verify_token"),
    ("WAGATE_ALLOW_PRIVATE", "network.allow_private"),
];

/// `WAGATE_` variables that are not settings, so not warned about: `wagate sandbox`'s and
/// `wagate-bench`'s flags, the test suite's, and the client examples'.
const NOT_SETTINGS: &[&str] = &[
    CONFIG_FILE_VAR,
    "WAGATE_SANDBOX_LISTEN",
    "WAGATE_SANDBOX_WEBHOOK_URL",
    "WAGATE_SANDBOX_ACCESS_TOKEN",
    "WAGATE_SANDBOX_DATA_DIR",
    "WAGATE_BENCH_DATABASE_URL",
    "WAGATE_TEST_DATABASE_URL",
    "WAGATE_PYTHON",
    "WAGATE_FUZZ_CASES",
    "WAGATE_URL",
    "WAGATE_API_KEY",
];

/// One setting of the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// `listen`, `dispatcher.max_attempts`: as the TOML file nests it.
    pub path: String,
    /// Takes a list: comma-separated in a variable or flag.
    pub list: bool,
    /// The default as serialised: `null` for an optional setting, unset by default.
    pub default: serde_json::Value,
}

impl Key {
    /// `WAGATE_LISTEN`, `WAGATE_DISPATCHER__MAX_ATTEMPTS`.
    pub fn env_name(&self) -> String {
        format!("{ENV_PREFIX}{}", self.path.replace('.', "__").to_ascii_uppercase())
    }
}

/// Every setting, found by serialising the defaults: a new field gets its variable without being
/// listed anywhere (and the documentation's test asks for its row).
pub fn keys() -> Vec<Key> {
    fn walk(prefix: &str, fields: &serde_json::Map<String, serde_json::Value>, keys: &mut Vec<Key>) {
        for (name, value) in fields {
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            match value {
                serde_json::Value::Object(section) => walk(&path, section, keys),
                _ => keys.push(Key { list: value.is_array(), default: value.clone(), path }),
            }
        }
    }
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(Config::default()) else {
        unreachable!("the defaults serialise to a table")
    };
    let mut keys = Vec::new();
    walk("", &fields, &mut keys);
    keys
}

/// A command-line flag, the last layer: `--listen` setting `listen`. An empty value counts as
/// not given.
pub struct Flag {
    pub name: &'static str,
    pub key: &'static str,
    pub value: String,
}

pub struct Loaded {
    pub config: Config,
    /// `WAGATE_` variables that name no setting, most likely misspelt: to be warned about once
    /// logging is set up, by name only (the value may be a secret).
    pub unknown_variables: Vec<UnknownVariable>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct UnknownVariable {
    pub name: String,
    /// The setting's variable it differs from only in underscores or case, if one does.
    pub did_you_mean: Option<String>,
}

/// The `WAGATE_` variables, sorted into settings, the config file's path and unknown names.
struct Environment {
    settings: Overrides,
    config_file: Option<PathBuf>,
    unknown: Vec<UnknownVariable>,
}

impl Environment {
    fn read(keys: &[Key], vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Self, ConfigError> {
        let names: BTreeMap<String, &Key> = keys.iter().map(|k| (k.env_name(), k)).collect();
        let mut env = Self { settings: Overrides::default(), config_file: None, unknown: Vec::new() };
        let mut aliased = Overrides::default();
        for (name, value) in vars {
            let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else { continue };
            let alias = ALIASES
                .iter()
                .find(|(alias, _)| *alias == name)
                .and_then(|(_, path)| keys.iter().find(|k| k.path == *path));
            let key = names.get(name).copied();
            if key.is_none() && alias.is_none() && name != CONFIG_FILE_VAR {
                if !NOT_SETTINGS.contains(&name) {
                    env.unknown.push(UnknownVariable { name: name.to_owned(), did_you_mean: nearest(name, &names) });
                }
                continue;
            }
            let value = value.into_string().map_err(|_| ConfigError::Invalid(format!("{name} is not valid UTF-8")))?;
            // Empty counts as unset, as it did when clap read these variables.
            if value.is_empty() {
                continue;
            }
            match (key, alias) {
                (Some(key), _) => env.settings.set(key, name, value),
                (None, Some(key)) => aliased.set(key, name, value),
                (None, None) => env.config_file = Some(PathBuf::from(value)),
            }
        }
        for (path, setting) in aliased.0 {
            env.settings.0.entry(path).or_insert(setting);
        }
        env.unknown.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(env)
    }
}

fn nearest(name: &str, names: &BTreeMap<String, &Key>) -> Option<String> {
    let squash = |s: &str| s.replace('_', "").to_ascii_uppercase();
    let wanted = squash(name);
    names.keys().find(|n| squash(n) == wanted).cloned()
}

/// Settings given by variables or by flags, each with the name it was given by.
#[derive(Clone, Debug, Default)]
struct Overrides(BTreeMap<String, Given>);

#[derive(Clone)]
struct Given {
    by: String,
    value: String,
    list: bool,
}

// The value may be a secret.
impl std::fmt::Debug for Given {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Given {{ by: {:?} }}", self.by)
    }
}

impl Overrides {
    fn set(&mut self, key: &Key, by: &str, value: String) {
        self.0.insert(key.path.clone(), Given { by: by.to_owned(), value, list: key.list });
    }
}

impl Given {
    /// A list's items: separated by commas, blanks dropped.
    fn items(&self) -> impl Iterator<Item = &str> {
        self.value.split(',').map(str::trim).filter(|item| !item.is_empty())
    }
}

impl config::Source for Overrides {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    /// Text values, which the settings' types parse as the file's would be: `5` as a number
    /// where one is wanted, `true` as a boolean; a list's items are separated by commas.
    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        let values = self.0.iter().map(|(path, given)| {
            let by = Some(&given.by);
            let value = if given.list {
                config::Value::new(by, given.items().map(|item| config::Value::new(by, item)).collect::<Vec<_>>())
            } else {
                config::Value::new(by, given.value.as_str())
            };
            (path.clone(), value)
        });
        Ok(values.collect())
    }
}

/// The TOML file, checked alone first: its errors then name the line, and an unknown key is
/// refused before the layers are merged.
fn read_file(path: &Path) -> Result<config::File<config::FileSourceString, config::FileFormat>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let invalid = |message: String| ConfigError::Parse { path: path.to_owned(), message };
    let alone: Config = toml::from_str(&text).map_err(|e| {
        // Not the error's own rendering: it quotes the line, which may hold a secret.
        let line =
            e.span().and_then(|span| text.get(..span.start)).map_or(1, |before| before.matches('\n').count() + 1);
        invalid(format!("line {line}: {}", e.message()))
    })?;
    if alone.secret_key.is_some() {
        return Err(invalid(
            "secret_key cannot be set in the file, beside the data it protects: set WAGATE_SECRET_KEY, or \
             secret_key_file to where the key is kept"
                .into(),
        ));
    }
    Ok(config::File::from_str(&text, config::FileFormat::Toml))
}

/// Names the variable or flag that gave the value and what its setting takes. Only they can be
/// at fault: the file was checked alone, and the defaults are valid.
fn setting_error(e: config::ConfigError, layers: &[&Overrides]) -> ConfigError {
    let (key, rule, type_error) = match e {
        // Its `unexpected` would show the value.
        config::ConfigError::Type { key: Some(key), expected, .. } => (key, format!("must be {expected}"), true),
        config::ConfigError::At { error, key: Some(key), .. } => (key, error.to_string(), false),
        other => return ConfigError::Invalid(other.to_string()),
    };
    // `network.allow_private[1]`: the list's item.
    let key = key.split('[').next().unwrap_or_default().to_owned();
    let Some(given) = layers.iter().find_map(|layer| layer.0.get(&key)) else {
        return ConfigError::Invalid(format!("{key}: {rule}"));
    };
    let rule = if type_error { rule } else { in_serde_words(&key, given).unwrap_or(rule) };
    ConfigError::Setting { given_by: given.by.clone(), key, rule }
}

/// Why `given` does not fit the setting at `path`, worded as for the file: config-rs words an
/// enum's error without its variants.
fn in_serde_words(path: &str, given: &Given) -> Option<String> {
    let value = if given.list {
        toml::Value::Array(given.items().map(toml::Value::from).collect())
    } else {
        toml::Value::from(given.value.as_str())
    };
    let nested = path
        .rsplit('.')
        .fold(value, |inner, name| toml::Value::Table(toml::Table::from_iter([(name.to_owned(), inner)])));
    nested.try_into::<Config>().err().map(|e| e.message().to_owned())
}

#[cfg(test)]
mod loading_tests {
    use serde_json::{Value as Json, json};
    use wagate_domain::secret::Secret;

    use super::*;

    fn load(file: Option<&Path>, vars: &[(&str, &str)], flags: &[Flag]) -> Result<Loaded, ConfigError> {
        Config::load(file, vars.iter().map(|(name, value)| (OsString::from(name), OsString::from(value))), flags)
    }

    fn setting<'a>(settings: &'a Json, path: &str) -> &'a Json {
        settings.pointer(&format!("/{}", path.replace('.', "/"))).unwrap_or_else(|| panic!("no {path}"))
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wagate.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// A value other than the default, as a variable gives it and as it serialises once loaded.
    fn sample(key: &Key) -> (String, Json) {
        // Settings that take only some texts.
        let text = match key.path.as_str() {
            "listen" => Some("0.0.0.0:9999"),
            "log_format" => Some("json"),
            "dispatcher.unknown_outcome" => Some("fail"),
            "window.outside" => Some("pass"),
            "messaging.default_tier" => Some("TIER_1K"),
            "media.store" => Some("s3"),
            _ => None,
        };
        if let Some(text) = text {
            return (text.to_owned(), json!(text));
        }
        match &key.default {
            Json::Bool(b) => ((!b).to_string(), json!(!b)),
            Json::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap() + 0.25;
                (f.to_string(), json!(f))
            }
            Json::Number(n) => {
                let n = n.as_u64().unwrap() + 7;
                (n.to_string(), json!(n))
            }
            Json::Array(_) => ("10.0.0.0/8, ::1/128".to_owned(), json!(["10.0.0.0/8", "::1/128"])),
            Json::String(s) => (format!("{s}-set"), json!(format!("{s}-set"))),
            // An optional text: a path, a URL, a secret.
            Json::Null => ("set-by-variable".to_owned(), json!("set-by-variable")),
            Json::Object(_) => unreachable!("sections are walked into"),
        }
    }

    #[test]
    fn keys_are_found_in_every_section_with_their_variables() {
        let keys = keys();
        let find = |path: &str| keys.iter().find(|k| k.path == path).unwrap_or_else(|| panic!("no {path}"));
        assert_eq!(find("listen").env_name(), "WAGATE_LISTEN");
        assert_eq!(find("dispatcher.max_attempts").env_name(), "WAGATE_DISPATCHER__MAX_ATTEMPTS");
        assert_eq!(find("secret_key").env_name(), "WAGATE_SECRET_KEY");
        assert!(find("network.allow_private").list);
        assert!(!find("http.max_connections").list);
        assert_eq!(find("bootstrap_api_key").default, Json::Null);
        assert!(keys.len() > 50, "{} keys", keys.len());
    }

    /// Walks every key, so a new one cannot be left without its variable.
    #[test]
    fn every_key_is_set_by_its_variable() {
        let keys = keys();
        let samples: Vec<(String, String, Json)> = keys
            .iter()
            .map(|k| {
                let (text, loaded) = sample(k);
                assert_ne!(loaded, k.default, "{}: the sample must differ from the default", k.path);
                (k.env_name(), text, loaded)
            })
            .collect();
        let vars: Vec<(&str, &str)> = samples.iter().map(|(name, text, _)| (name.as_str(), text.as_str())).collect();
        let loaded = load(None, &vars, &[]).unwrap();
        assert_eq!(loaded.unknown_variables, []);
        let settings = serde_json::to_value(&loaded.config).unwrap();
        for (key, (name, _, expected)) in keys.iter().zip(&samples) {
            let got = setting(&settings, &key.path);
            assert!(got == expected || got == "<redacted>", "{name} set {} to {got}, not {expected}", key.path);
        }
        let secrets = [
            (&loaded.config.bootstrap_api_key, "bootstrap_api_key"),
            (&loaded.config.secret_key, "secret_key"),
            (&loaded.config.sandbox.app_secret, "sandbox.app_secret"),
            (&loaded.config.sandbox.verify_token, "sandbox.verify_token"),
            (&loaded.config.media.s3_secret_access_key, "media.s3_secret_access_key"),
        ];
        for (secret, path) in secrets {
            assert_eq!(secret.as_ref().map(Secret::expose), Some("set-by-variable"), "{path}");
        }
    }

    #[test]
    fn flags_beat_variables_which_beat_the_file_which_beats_the_defaults() {
        let (_dir, path) = file("listen = \"127.0.0.1:1001\"\n[dispatcher]\nmax_attempts = 3\nretry_base_ms = 5\n");
        let vars = [("WAGATE_LISTEN", "127.0.0.1:1002"), ("WAGATE_DISPATCHER__MAX_ATTEMPTS", "4")];
        let flags = [Flag { name: "--listen", key: "listen", value: "127.0.0.1:1003".into() }];
        let layered = |file, vars: &[(&str, &str)], flags: &[Flag]| {
            let c = load(file, vars, flags).unwrap().config;
            (c.listen.port(), c.dispatcher.max_attempts, c.dispatcher.retry_base_ms)
        };
        assert_eq!(layered(None, &[], &[]), (8080, 10, 1_000));
        assert_eq!(layered(Some(&path), &[], &[]), (1001, 3, 5));
        assert_eq!(layered(Some(&path), &vars, &[]), (1002, 4, 5));
        assert_eq!(layered(Some(&path), &vars, &flags), (1003, 4, 5));
        assert_eq!(layered(None, &[], &flags), (1003, 10, 1_000));
        // WAGATE_CONFIG names the file; --config wins over it.
        let path_text = path.to_str().unwrap();
        assert_eq!(layered(None, &[("WAGATE_CONFIG", path_text)], &[]), (1001, 3, 5));
        let (_other_dir, other) = file("listen = \"127.0.0.1:1004\"\n");
        assert_eq!(layered(Some(&other), &[("WAGATE_CONFIG", path_text)], &[]), (1004, 10, 1_000));
    }

    #[test]
    fn a_list_from_a_variable_replaces_the_files() {
        let (_dir, path) = file("[network]\nallow_private = [\"127.0.0.0/8\"]\n");
        let loaded = load(Some(&path), &[("WAGATE_NETWORK__ALLOW_PRIVATE", "10.0.0.0/8,")], &[]).unwrap();
        let policy = loaded.config.network.policy();
        assert!(policy.check("10.1.2.3".parse().unwrap()).is_ok());
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn the_older_variable_names_still_work() {
        let (_dir, path) = file("[dispatcher]\nmax_attempts = 3\n");
        let vars = [
            ("WAGATE_CONFIG", path.to_str().unwrap()),
            ("WAGATE_LISTEN", "127.0.0.1:9"),
            ("WAGATE_DATA_DIR", "/srv/wagate"),
            ("WAGATE_DATABASE_URL", "postgres://wagate@db/wagate"),
            ("WAGATE_LOG_FORMAT", "json"),
            ("WAGATE_BOOTSTRAP_API_KEY", "boot-key"),
            ("WAGATE_SANDBOX_APP_SECRET", "app-secret"),
            ("WAGATE_SANDBOX_VERIFY_TOKEN", "verify-token"),
            ("WAGATE_ALLOW_PRIVATE", "127.0.0.0/8,::1/128"),
            ("WAGATE_SECRET_KEY", "c2VhbGluZyBrZXk="),
            ("RUST_LOG", "debug"),
        ];
        let loaded = load(None, &vars, &[]).unwrap();
        assert_eq!(loaded.unknown_variables, []);
        let c = loaded.config;
        assert_eq!(c.dispatcher.max_attempts, 3, "WAGATE_CONFIG names the file");
        assert_eq!(c.listen.port(), 9);
        assert_eq!(c.data_dir, Path::new("/srv/wagate"));
        assert_eq!(c.database_url.as_deref(), Some("postgres://wagate@db/wagate"));
        assert_eq!(c.log_format, LogFormat::Json);
        let exposed = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_owned());
        assert_eq!(exposed(&c.bootstrap_api_key).as_deref(), Some("boot-key"));
        assert_eq!(exposed(&c.sandbox.app_secret).as_deref(), Some("app-secret"));
        assert_eq!(exposed(&c.sandbox.verify_token).as_deref(), Some("verify-token"));
        assert_eq!(exposed(&c.secret_key).as_deref(), Some("c2VhbGluZyBrZXk="));
        assert!(c.network.policy().check("::1".parse().unwrap()).is_ok());

        // The scheme's name wins over the older one; either way round in the environment.
        for vars in [
            [("WAGATE_SANDBOX_APP_SECRET", "older"), ("WAGATE_SANDBOX__APP_SECRET", "newer")],
            [("WAGATE_SANDBOX__APP_SECRET", "newer"), ("WAGATE_SANDBOX_APP_SECRET", "older")],
        ] {
            let c = load(None, &vars, &[]).unwrap().config;
            assert_eq!(exposed(&c.sandbox.app_secret).as_deref(), Some("newer"));
        }

        // Empty counts as unset.
        let c =
            load(None, &[("WAGATE_BOOTSTRAP_API_KEY", ""), ("WAGATE_ALLOW_PRIVATE", ""), ("WAGATE_LISTEN", "")], &[])
                .unwrap()
                .config;
        assert!(c.bootstrap_api_key.is_none() && c.network.allow_private.is_empty() && c.listen.port() == 8080);
    }

    #[test]
    fn a_bad_value_names_its_variable_and_what_the_setting_takes() {
        let cases = [
            ("WAGATE_DISPATCHER__MAX_ATTEMPTS", "abc", "must be an integer"),
            ("WAGATE_DISPATCHER__MAX_ATTEMPTS", "99999999999", "must be an unsigned 32 bit integer"),
            ("WAGATE_METRICS__REQUIRE_KEY", "maybe", "must be a boolean"),
            ("WAGATE_DISPATCHER__BURST_FRACTION", "lots", "must be a floating point"),
            ("WAGATE_LOG_FORMAT", "xml", "unknown variant `xml`, expected `text` or `json`"),
            ("WAGATE_LISTEN", "nowhere", "invalid socket address"),
            ("WAGATE_NETWORK__ALLOW_PRIVATE", "127.0.0.0/8,10.0.0.0/33", "'10.0.0.0/33' is not a CIDR range"),
        ];
        for (name, value, rule) in cases {
            let Err(e) = load(None, &[(name, value)], &[]) else { panic!("{name}={value} was taken") };
            let e = e.to_string();
            assert!(e.starts_with(&format!("{name} (")) && e.contains(rule), "{name}={value}: {e}");
        }
        // The type's rule, not the value, which may be a secret.
        let e = load(None, &[("WAGATE_HTTP__MAX_CONNECTIONS", "hunter2")], &[]).err().unwrap().to_string();
        assert_eq!(e, "WAGATE_HTTP__MAX_CONNECTIONS (http.max_connections): must be an integer");

        let flags = [Flag { name: "--allow-private", key: "network.allow_private", value: "::1/129".into() }];
        let e = load(None, &[("WAGATE_ALLOW_PRIVATE", "::1/128")], &flags).err().unwrap().to_string();
        assert!(e.starts_with("--allow-private (network.allow_private): '::1/129'"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_text_is_refused_without_showing_it() {
        use std::os::unix::ffi::OsStringExt;
        let vars = [(OsString::from("WAGATE_BOOTSTRAP_API_KEY"), OsString::from_vec(b"secret\xff".to_vec()))];
        let e = Config::load(None, vars, &[]).err().unwrap().to_string();
        assert!(e.contains("WAGATE_BOOTSTRAP_API_KEY is not valid UTF-8") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_by_name_and_line() {
        let (_dir, path) = file("listen = \"127.0.0.1:1\"\n[dispatcher]\nmax_attempt = 3\n");
        let e = load(Some(&path), &[], &[]).err().unwrap().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("line 3: unknown field `max_attempt`"), "{e}");

        // The line is not quoted: a misspelt secret's value stays out of the message.
        let (_dir, path) = file("bootstrap_api_kee = \"hunter2-secret\"\n");
        let e = load(Some(&path), &[], &[]).err().unwrap().to_string();
        assert!(e.contains("unknown field `bootstrap_api_kee`") && !e.contains("hunter2"), "{e}");

        let (_dir, path) = file("secret_key = \"c2VhbGluZyBrZXk=\"\n");
        let e = load(Some(&path), &[], &[]).err().unwrap().to_string();
        assert!(e.contains("secret_key cannot be set in the file") && !e.contains("c2Vh"), "{e}");

        let e = load(Some(Path::new("/nonexistent/wagate.toml")), &[], &[]).err().unwrap().to_string();
        assert!(e.contains("cannot read config file /nonexistent/wagate.toml"), "{e}");
    }

    #[test]
    fn a_variable_that_names_no_setting_is_reported_by_name() {
        let vars = [
            ("WAGATE_DISPATCHER_MAX_ATTEMPTS", "5"),
            ("WAGATE_BOOTSTRAP_KEY", "a-secret"),
            ("WAGATE_SANDBOX_LISTEN", "127.0.0.1:1"),
            ("WAGATE_TEST_DATABASE_URL", "postgres://localhost/test"),
            ("HOME", "/root"),
        ];
        let loaded = load(None, &vars, &[]).unwrap();
        let unknown = |name: &str, meant: Option<&str>| UnknownVariable {
            name: name.to_owned(),
            did_you_mean: meant.map(str::to_owned),
        };
        assert_eq!(
            loaded.unknown_variables,
            [
                unknown("WAGATE_BOOTSTRAP_KEY", None),
                unknown("WAGATE_DISPATCHER_MAX_ATTEMPTS", Some("WAGATE_DISPATCHER__MAX_ATTEMPTS")),
            ]
        );
        assert_eq!(loaded.config.dispatcher.max_attempts, 10);
    }

    /// The default as docs/configuration.md shows it.
    fn documented_default(key: &Key) -> String {
        match &key.default {
            Json::Null => "none".to_owned(),
            Json::Array(items) if items.is_empty() => "none".to_owned(),
            Json::String(s) => format!("`{s}`"),
            other => format!("`{other}`"),
        }
    }

    /// docs/configuration.md has a row for every key, with its variable and its default, and
    /// none for a key that is gone.
    #[test]
    fn the_documentation_lists_every_key() {
        let doc = include_str!("../../../../docs/configuration.md");
        let keys = keys();
        let missing: Vec<String> = keys
            .iter()
            .map(|k| format!("| `{}` | `{}` | {} |", k.path, k.env_name(), documented_default(k)))
            .filter(|row| !doc.lines().any(|line| line.starts_with(row.as_str())))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks these rows (or shows another default):\n{}",
            missing.join("\n")
        );
        let (_, tables) = doc.split_once("## Every key").expect("docs/configuration.md has its tables of keys");
        let stale: Vec<&str> = tables
            .lines()
            .filter(|line| line.starts_with("| `"))
            .filter(|line| !keys.iter().any(|k| line.starts_with(&format!("| `{}` |", k.path))))
            .collect();
        assert!(stale.is_empty(), "docs/configuration.md documents keys that do not exist:\n{}", stale.join("\n"));
    }
}
