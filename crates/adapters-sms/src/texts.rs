//! The texts of SMS: one template per verification purpose, with the placeholders
//! `{code}`, `{app}` and `{minutes}`, and one per notice kind, with `{app}` only (a notice
//! carries no code, so it has neither a code nor a lifetime to tell). Templates are
//! checked once, at start-up, so a text that would send no code, or a notice that would
//! promise one, never goes out.

use std::fmt;
use std::time::Duration;

use factors_application::ports::{NoticeKind, SmsPurpose};
use factors_domain::VerificationCode;

/// The registration text unless `sms.texts.registration` says otherwise.
pub const DEFAULT_REGISTRATION: &str = "{code} is your {app} verification code. It expires in {minutes} minutes.";
/// The contact phone text unless `sms.texts.contact_phone` says otherwise.
pub const DEFAULT_CONTACT_PHONE: &str =
    "{code} is your {app} code to confirm this phone number. It expires in {minutes} minutes.";
/// The sign-in text unless `sms.texts.sign_in` says otherwise.
pub const DEFAULT_SIGN_IN: &str = "{code} is your {app} sign-in code. Don't share it.";
/// The removal notice unless `sms.texts.removal_notice` says otherwise. It does not show
/// the number: it goes to that number.
pub const DEFAULT_REMOVAL_NOTICE: &str =
    "A phone number was removed from your {app} account. If this wasn't you, contact your administrator.";

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
    pub removal_notice: Option<String>,
}

/// Which text a template is: a code's, by purpose, or a notice's, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Code(SmsPurpose),
    Notice(NoticeKind),
}

impl TextKind {
    /// The text's name, as its setting (`sms.texts.<name>`) and errors name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code(purpose) => purpose.as_str(),
            Self::Notice(kind) => kind.as_str(),
        }
    }

    /// The placeholders this text may use, as an error lists them.
    fn placeholders(self) -> &'static str {
        match self {
            Self::Code(_) => "{code}, {app} and {minutes}",
            Self::Notice(_) => "{app} only",
        }
    }
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The SMS would not carry the code.
    #[error("the {} text must contain {{code}}", .0.as_str())]
    NoCode(SmsPurpose),
    /// Most likely a typo of a placeholder; it would go out to users verbatim.
    #[error(
        "the {text} text has an unknown placeholder {{{name}}}; the placeholders are {placeholders}",
        text = .0.as_str(),
        name = .1,
        placeholders = .0.placeholders()
    )]
    UnknownPlaceholder(TextKind, String),
    /// `{code}` or `{minutes}` in a notice: it carries no code, so the text would promise
    /// one that never comes.
    #[error(
        "the {kind} text cannot use {{{name}}}: a notice carries no code; its only placeholder is {{app}}",
        kind = .0.as_str(),
        name = .1
    )]
    NoCodeInNotice(NoticeKind, &'static str),
    /// A notice with nothing to say would go out as an empty SMS.
    #[error("the {} text is empty", .0.as_str())]
    EmptyNotice(NoticeKind),
}

impl TextError {
    /// The text that was refused.
    pub fn text(&self) -> TextKind {
        match self {
            Self::NoCode(purpose) => TextKind::Code(*purpose),
            Self::UnknownPlaceholder(text, _) => *text,
            Self::NoCodeInNotice(kind, _) | Self::EmptyNotice(kind) => TextKind::Notice(*kind),
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
    fn parse(kind: TextKind, text: &str) -> Result<Self, TextError> {
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
            let part = match (&after[..name_len], kind) {
                ("app", _) => Part::App,
                ("code", TextKind::Code(_)) => Part::Code,
                ("minutes", TextKind::Code(_)) => Part::Minutes,
                ("code", TextKind::Notice(notice)) => return Err(TextError::NoCodeInNotice(notice, "code")),
                ("minutes", TextKind::Notice(notice)) => return Err(TextError::NoCodeInNotice(notice, "minutes")),
                (other, _) => return Err(TextError::UnknownPlaceholder(kind, other.to_owned())),
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
        match kind {
            TextKind::Code(purpose) if !parts.contains(&Part::Code) => return Err(TextError::NoCode(purpose)),
            TextKind::Notice(notice) if text.trim().is_empty() => return Err(TextError::EmptyNotice(notice)),
            TextKind::Code(_) | TextKind::Notice(_) => {}
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

/// The texts, checked, and what fills their placeholders.
#[derive(Clone)]
pub struct SmsTexts {
    registration: Template,
    contact_phone: Template,
    sign_in: Template,
    removal_notice: Template,
    app_name: Option<String>,
    minutes: u64,
    sign_in_minutes: u64,
}

impl SmsTexts {
    /// # Errors
    /// [`TextError`] for a code's text without `{code}`, a notice's with `{code}` or
    /// `{minutes}` or nothing at all, or any text with an unknown placeholder.
    pub fn new(config: &TextConfig) -> Result<Self, TextError> {
        let code = |purpose: SmsPurpose, given: &Option<String>, default: &str| {
            Template::parse(TextKind::Code(purpose), given.as_deref().unwrap_or(default))
        };
        let notice = |kind: NoticeKind, given: &Option<String>, default: &str| {
            Template::parse(TextKind::Notice(kind), given.as_deref().unwrap_or(default))
        };
        let app_name = config.app_name.as_deref().map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned);
        Ok(Self {
            registration: code(SmsPurpose::OtpSmsRegistration, &config.registration, DEFAULT_REGISTRATION)?,
            contact_phone: code(SmsPurpose::ContactPhone, &config.contact_phone, DEFAULT_CONTACT_PHONE)?,
            sign_in: code(SmsPurpose::SignIn, &config.sign_in, DEFAULT_SIGN_IN)?,
            removal_notice: notice(NoticeKind::OtpSmsRemoved, &config.removal_notice, DEFAULT_REMOVAL_NOTICE)?,
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

    /// The text of a notice of `kind`. It holds no code, but is still not logged: it is
    /// the user's message, and the operator configured it.
    pub fn render_notice(&self, kind: NoticeKind) -> String {
        let template = match kind {
            NoticeKind::OtpSmsRemoved => &self.removal_notice,
        };
        // `parse` refused `{code}` and `{minutes}` in notices, so these fill nothing.
        template.render("", self.app_name.as_deref(), 0)
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
        assert_eq!(
            refused,
            TextError::UnknownPlaceholder(TextKind::Code(SmsPurpose::OtpSmsRegistration), "cod".into())
        );
        assert!(refused.to_string().contains("unknown placeholder {cod}"), "{refused}");
        assert_eq!(refused.text().as_str(), "registration");
    }

    #[test]
    fn the_removal_notice_names_the_app_and_neither_a_code_nor_the_number() {
        let acme = texts(TextConfig { app_name: Some("Acme".into()), ..TextConfig::default() });
        assert_eq!(
            acme.render_notice(NoticeKind::OtpSmsRemoved),
            "A phone number was removed from your Acme account. If this wasn't you, contact your administrator."
        );
        let unnamed = texts(TextConfig::default());
        assert_eq!(
            unnamed.render_notice(NoticeKind::OtpSmsRemoved),
            "A phone number was removed from your account. If this wasn't you, contact your administrator."
        );
        let custom = texts(TextConfig {
            app_name: Some("Acme".into()),
            removal_notice: Some("{app}: this number no longer signs you in.".into()),
            ..TextConfig::default()
        });
        assert_eq!(custom.render_notice(NoticeKind::OtpSmsRemoved), "Acme: this number no longer signs you in.");
    }

    #[test]
    fn a_removal_notice_promising_a_code_or_saying_nothing_is_refused() {
        let notice = |text: &str| {
            SmsTexts::new(&TextConfig { removal_notice: Some(text.into()), ..TextConfig::default() }).expect_err(text)
        };
        for (text, name) in [("Your code {code}", "code"), ("Valid for {minutes} minutes", "minutes")] {
            let refused = notice(text);
            assert_eq!(refused.text().as_str(), "removal_notice");
            assert_eq!(
                refused.to_string(),
                format!(
                    "the removal_notice text cannot use {{{name}}}: a notice carries no code; its only placeholder is {{app}}"
                )
            );
        }
        let refused = notice("{phone} was removed");
        assert_eq!(
            refused.to_string(),
            "the removal_notice text has an unknown placeholder {phone}; the placeholders are {app} only"
        );
        assert_eq!(notice("  ").to_string(), "the removal_notice text is empty");
        // A code's text still may not go without its code, and lists its own placeholders.
        let refused = SmsTexts::new(&TextConfig { sign_in: Some("{phone} {code}".into()), ..TextConfig::default() })
            .expect_err("unknown");
        assert!(refused.to_string().ends_with("the placeholders are {code}, {app} and {minutes}"), "{refused}");
    }

    #[test]
    fn debug_output_holds_no_text() {
        let texts = texts(TextConfig::default());
        assert!(!format!("{texts:?}").contains("code"));
    }
}
