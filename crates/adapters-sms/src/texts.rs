//! The texts of verification SMS: one template per purpose, with the placeholders
//! `{code}`, `{app}` and `{minutes}`. Templates are checked once, at start-up, so a text
//! that would send no code never goes out.

use std::fmt;
use std::time::Duration;

use factors_application::ports::SmsPurpose;
use factors_domain::VerificationCode;

/// The registration text unless `sms.texts.registration` says otherwise.
pub const DEFAULT_REGISTRATION: &str = "{code} is your {app} verification code. It expires in {minutes} minutes.";
/// The contact phone text unless `sms.texts.contact_phone` says otherwise.
pub const DEFAULT_CONTACT_PHONE: &str =
    "{code} is your {app} code to confirm this phone number. It expires in {minutes} minutes.";
/// The sign-in text unless `sms.texts.sign_in` says otherwise.
pub const DEFAULT_SIGN_IN: &str = "{code} is your {app} sign-in code. Don't share it.";

/// What the texts are made of; `None` texts take the English defaults above.
#[derive(Debug, Clone, Default)]
pub struct TextConfig {
    /// The name `{app}` stands for. Without one, `{app}` is left out together with one
    /// space beside it, so "your {app} code" reads "your code".
    pub app_name: Option<String>,
    /// How long a registration or contact code is valid: `{minutes}` is this in whole
    /// minutes, rounded up.
    pub code_ttl: Duration,
    /// How long a sign-in code is valid: `{minutes}` of the sign-in text.
    pub sign_in_ttl: Duration,
    pub registration: Option<String>,
    pub contact_phone: Option<String>,
    pub sign_in: Option<String>,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The SMS would not carry the code.
    #[error("the {} text must contain {{code}}", .0.as_str())]
    NoCode(SmsPurpose),
    /// Most likely a typo of a placeholder; it would go out to users verbatim.
    #[error(
        "the {purpose} text has an unknown placeholder {{{name}}}; the placeholders are {{code}}, {{app}} and {{minutes}}",
        purpose = .0.as_str(),
        name = .1
    )]
    UnknownPlaceholder(SmsPurpose, String),
}

impl TextError {
    /// The purpose whose text was refused.
    pub fn purpose(&self) -> SmsPurpose {
        match self {
            Self::NoCode(purpose) | Self::UnknownPlaceholder(purpose, _) => *purpose,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Code,
    App,
    Minutes,
}

/// A parsed template. Rendering is one pass over its parts, so an app name that happens
/// to contain `{code}` is never substituted again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Part>);

impl Template {
    fn parse(purpose: SmsPurpose, text: &str) -> Result<Self, TextError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            if name_len == 0 || after.as_bytes().get(name_len) != Some(&b'}') {
                // A brace that opens no placeholder is text.
                literal.push('{');
                rest = after;
                continue;
            }
            let part = match &after[..name_len] {
                "code" => Part::Code,
                "app" => Part::App,
                "minutes" => Part::Minutes,
                other => return Err(TextError::UnknownPlaceholder(purpose, other.to_owned())),
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &after[name_len + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        if !parts.contains(&Part::Code) {
            return Err(TextError::NoCode(purpose));
        }
        Ok(Self(parts))
    }

    fn render(&self, code: &str, app: Option<&str>, minutes: u64) -> String {
        let mut out = String::with_capacity(160);
        let mut drop_next_space = false;
        for part in &self.0 {
            let drop_space = std::mem::take(&mut drop_next_space);
            match part {
                Part::Text(text) => {
                    let text = if drop_space { text.strip_prefix(' ').unwrap_or(text) } else { text };
                    out.push_str(text);
                }
                Part::Code => out.push_str(code),
                Part::Minutes => out.push_str(&minutes.to_string()),
                Part::App => match app {
                    Some(app) => out.push_str(app),
                    // Left out with one space beside it: the one before, else the one after.
                    None if out.ends_with(' ') => {
                        out.pop();
                    }
                    None => drop_next_space = true,
                },
            }
        }
        out
    }
}

/// The three texts, checked, and what fills their placeholders.
#[derive(Clone)]
pub struct SmsTexts {
    registration: Template,
    contact_phone: Template,
    sign_in: Template,
    app_name: Option<String>,
    minutes: u64,
    sign_in_minutes: u64,
}

impl SmsTexts {
    /// # Errors
    /// [`TextError`] for a text without `{code}` or with an unknown placeholder.
    pub fn new(config: &TextConfig) -> Result<Self, TextError> {
        let template = |purpose: SmsPurpose, given: &Option<String>, default: &str| {
            Template::parse(purpose, given.as_deref().unwrap_or(default))
        };
        let app_name = config.app_name.as_deref().map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned);
        Ok(Self {
            registration: template(SmsPurpose::OtpSmsRegistration, &config.registration, DEFAULT_REGISTRATION)?,
            contact_phone: template(SmsPurpose::ContactPhone, &config.contact_phone, DEFAULT_CONTACT_PHONE)?,
            sign_in: template(SmsPurpose::SignIn, &config.sign_in, DEFAULT_SIGN_IN)?,
            app_name,
            minutes: whole_minutes(config.code_ttl),
            sign_in_minutes: whole_minutes(config.sign_in_ttl),
        })
    }

    /// The text of an SMS carrying `code` for `purpose`. It holds the code: never log it.
    pub fn render(&self, purpose: SmsPurpose, code: &VerificationCode) -> String {
        let (template, minutes) = match purpose {
            SmsPurpose::OtpSmsRegistration => (&self.registration, self.minutes),
            SmsPurpose::ContactPhone => (&self.contact_phone, self.minutes),
            SmsPurpose::SignIn => (&self.sign_in, self.sign_in_minutes),
        };
        template.render(code.expose(), self.app_name.as_deref(), minutes)
    }
}

/// `ttl` in whole minutes, rounded up, at least 1.
fn whole_minutes(ttl: Duration) -> u64 {
    ttl.as_secs().div_ceil(60).max(1)
}

impl fmt::Debug for SmsTexts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsTexts")
            .field("app_name", &self.app_name)
            .field("minutes", &self.minutes)
            .field("sign_in_minutes", &self.sign_in_minutes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(config: TextConfig) -> SmsTexts {
        SmsTexts::new(&TextConfig { code_ttl: Duration::from_secs(600), ..config }).expect("valid texts")
    }

    fn code() -> VerificationCode {
        VerificationCode::from_number(42)
    }

    #[test]
    fn the_defaults_name_the_app_and_the_lifetime() {
        let texts = texts(TextConfig { app_name: Some("Acme".into()), ..TextConfig::default() });
        assert_eq!(
            texts.render(SmsPurpose::OtpSmsRegistration, &code()),
            "000042 is your Acme verification code. It expires in 10 minutes."
        );
        assert_eq!(
            texts.render(SmsPurpose::ContactPhone, &code()),
            "000042 is your Acme code to confirm this phone number. It expires in 10 minutes."
        );
        assert_eq!(texts.render(SmsPurpose::SignIn, &code()), "000042 is your Acme sign-in code. Don't share it.");
    }

    #[test]
    fn without_an_app_name_the_placeholder_goes_with_one_space() {
        let texts = texts(TextConfig {
            app_name: Some("  ".into()),
            contact_phone: Some("{app} {code} is your code".into()),
            ..TextConfig::default()
        });
        assert_eq!(texts.render(SmsPurpose::SignIn, &code()), "000042 is your sign-in code. Don't share it.");
        assert_eq!(texts.render(SmsPurpose::ContactPhone, &code()), "000042 is your code");
    }

    #[test]
    fn minutes_round_up() {
        let texts = SmsTexts::new(&TextConfig { code_ttl: Duration::from_secs(90), ..TextConfig::default() })
            .expect("valid texts");
        assert!(texts.render(SmsPurpose::OtpSmsRegistration, &code()).ends_with("It expires in 2 minutes."));
    }

    #[test]
    fn a_sign_in_text_tells_the_sign_in_codes_lifetime() {
        let texts = texts(TextConfig {
            sign_in_ttl: Duration::from_secs(300),
            sign_in: Some("{code} expires in {minutes} minutes".into()),
            ..TextConfig::default()
        });
        assert_eq!(texts.render(SmsPurpose::SignIn, &code()), "000042 expires in 5 minutes");
        assert!(texts.render(SmsPurpose::OtpSmsRegistration, &code()).ends_with("It expires in 10 minutes."));
    }

    #[test]
    fn placeholders_are_filled_once_and_other_braces_are_text() {
        let texts = texts(TextConfig {
            app_name: Some("{code}".into()),
            sign_in: Some("{app}: {code} {not a placeholder} {".into()),
            ..TextConfig::default()
        });
        assert_eq!(texts.render(SmsPurpose::SignIn, &code()), "{code}: 000042 {not a placeholder} {");
    }

    #[test]
    fn a_text_without_the_code_or_with_a_typo_is_refused() {
        let refused =
            SmsTexts::new(&TextConfig { sign_in: Some("Your code is {app}".into()), ..TextConfig::default() })
                .expect_err("no code");
        assert_eq!(refused, TextError::NoCode(SmsPurpose::SignIn));
        assert_eq!(refused.to_string(), "the sign_in text must contain {code}");
        let refused = SmsTexts::new(&TextConfig { registration: Some("{cod} {code}".into()), ..TextConfig::default() })
            .expect_err("typo");
        assert_eq!(refused, TextError::UnknownPlaceholder(SmsPurpose::OtpSmsRegistration, "cod".into()));
        assert!(refused.to_string().contains("unknown placeholder {cod}"), "{refused}");
    }

    #[test]
    fn debug_output_holds_no_text() {
        let texts = texts(TextConfig::default());
        assert!(!format!("{texts:?}").contains("code"));
    }
}
