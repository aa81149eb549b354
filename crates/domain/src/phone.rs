//! Phone numbers, parsed and normalised to E.164 with the `phonenumber` crate (a port of
//! Google's libphonenumber), and their masked form for logs, events and notifications.

use std::fmt;

/// Longer input than this is refused before parsing: no real number, with any
/// formatting, comes near it, and the parser's work stays bounded.
const MAX_INPUT_CHARS: usize = 64;

/// Why a phone number was refused. Never carries the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number is too long")]
    TooLong,
    #[error("phone number is not in international format (+<country code><number>)")]
    Unparseable,
    #[error("phone number is not a valid number")]
    NotValid,
}

/// A valid phone number in E.164 form (`+41791234567`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    /// Digits of the country calling code, kept visible when masking.
    country_code_digits: usize,
}

impl PhoneNumber {
    /// Parses a number given in international form, with any of the usual separators
    /// (`+41 79 123 45 67`, `+1 (415) 555-0100`), and normalises it to E.164.
    ///
    /// # Errors
    /// [`PhoneError`] when the input is empty, too long, not international or not a
    /// number that exists in the numbering plan of its country.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(PhoneError::Empty);
        }
        if input.chars().count() > MAX_INPUT_CHARS {
            return Err(PhoneError::TooLong);
        }
        let parsed = phonenumber::parse(None, input).map_err(|_| PhoneError::Unparseable)?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::NotValid);
        }
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        let country_code_digits = parsed.code().value().to_string().len();
        Ok(Self { e164, country_code_digits })
    }

    /// Loads the numbering metadata now: decoding it and compiling its patterns takes a
    /// few hundred milliseconds, once per process, which would otherwise fall on the first
    /// request that reads or parses a number.
    pub fn load_metadata() {
        let _: &phonenumber::metadata::Database = &phonenumber::metadata::DATABASE;
    }

    /// A number read back from storage, where it was written in E.164 after
    /// [`PhoneNumber::parse`]. Only the shape is checked (`+` and 7 to 15 digits): a newer
    /// numbering plan that no longer knows the number must not make it unreadable, or
    /// impossible to remove.
    ///
    /// # Errors
    /// [`PhoneError::Unparseable`] when the text is not E.164-shaped.
    pub fn from_stored(e164: &str) -> Result<Self, PhoneError> {
        let digits = e164.strip_prefix('+').ok_or(PhoneError::Unparseable)?;
        if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
            return Err(PhoneError::Unparseable);
        }
        Ok(Self { e164: e164.to_owned(), country_code_digits: country_code_digits(digits) })
    }

    /// The number in E.164 form. Full numbers are personal data: show [`Self::masked`]
    /// wherever a person other than the owner might read it.
    pub fn as_e164(&self) -> &str {
        &self.e164
    }

    /// The region the number belongs to in the numbering plan: a CLDR region code (`CH`,
    /// `US`, `CA`: the country calling code alone does not tell the last two apart), or
    /// [`PhoneNumber::NON_GEOGRAPHIC`] for a number of no country (international freephone,
    /// satellite and international networks) or one the plan no longer knows.
    pub fn region(&self) -> String {
        phonenumber::parse(None, &self.e164)
            .ok()
            .and_then(|parsed| parsed.country().id())
            .map_or_else(|| Self::NON_GEOGRAPHIC.to_owned(), |id| id.as_ref().to_owned())
    }

    /// The region of the numbers of no country, as libphonenumber names it.
    pub const NON_GEOGRAPHIC: &'static str = "001";

    /// Whether `code` names a region: a CLDR code the numbering plan knows (`CH`), or
    /// [`PhoneNumber::NON_GEOGRAPHIC`].
    pub fn is_region(code: &str) -> bool {
        code == Self::NON_GEOGRAPHIC || code.parse::<phonenumber::country::Id>().is_ok()
    }

    /// The country code and the last three digits, the rest starred: `+41******567`.
    pub fn masked(&self) -> String {
        let digits = &self.e164[1..];
        let (country, national) = digits.split_at(self.country_code_digits.min(digits.len()));
        let shown = national.len().min(3).min(national.len().saturating_sub(1));
        let hidden = national.len() - shown;
        format!("+{country}{}{}", "*".repeat(hidden), &national[hidden..])
    }
}

/// How many leading `digits` of an E.164 number are its country calling code. Calling
/// codes form a prefix code (ITU-T E.164), so the first prefix of one to three digits
/// that names a code is it. A lookup in the numbering metadata, not a parse: reading a
/// stored number back must stay cheap, and parsing runs the metadata's regular
/// expressions. 1 for a code the metadata does not know.
fn country_code_digits(digits: &str) -> usize {
    (1..=3)
        .find(|&n| {
            digits
                .get(..n)
                .and_then(|prefix| prefix.parse::<u16>().ok())
                .is_some_and(|code| phonenumber::metadata::DATABASE.region(&code).is_some())
        })
        .unwrap_or(1)
}

/// Debug output is masked so that a stray `{:?}` cannot leak a number into a log.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PhoneNumber").field(&self.masked()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usual_formats_normalise_to_e164() {
        let cases = [
            ("+41791234567", "+41791234567"),
            ("+41 79 123 45 67", "+41791234567"),
            ("  +41-79-123-45-67 ", "+41791234567"),
            ("+1 (415) 555-2671", "+14155552671"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+49 30 901820", "+4930901820"),
        ];
        for (input, expected) in cases {
            let phone = PhoneNumber::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(phone.as_e164(), expected, "input {input:?}");
        }
    }

    #[test]
    fn bad_numbers_are_refused_with_their_reason() {
        let cases = [
            ("", PhoneError::Empty),
            ("   ", PhoneError::Empty),
            ("0791234567", PhoneError::Unparseable),
            ("not a number", PhoneError::Unparseable),
            ("+41 12", PhoneError::NotValid),
            ("+999 123456789", PhoneError::Unparseable),
            (&"+4179123456789".repeat(5), PhoneError::TooLong),
        ];
        for (input, expected) in cases {
            assert_eq!(PhoneNumber::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn masking_keeps_the_country_code_and_the_last_three_digits() {
        let phone = PhoneNumber::parse("+41 79 123 45 67").expect("valid");
        assert_eq!(phone.masked(), "+41******567");
        let phone = PhoneNumber::parse("+1 415 555 2671").expect("valid");
        assert_eq!(phone.masked(), "+1*******671");
    }

    #[test]
    fn stored_numbers_are_read_back_by_shape_alone() {
        let phone = PhoneNumber::parse("+41 79 123 45 67").expect("valid");
        assert_eq!(PhoneNumber::from_stored(phone.as_e164()), Ok(phone));
        // Not valid in today's plan, yet readable (and removable) once stored.
        assert_eq!(PhoneNumber::from_stored("+4112345678").map(|p| p.masked()), Ok("+41*****678".to_owned()));
        for bad in ["41791234567", "+41 79", "+0123456789", "+12345678901234567", "+4179abc4567"] {
            assert_eq!(PhoneNumber::from_stored(bad), Err(PhoneError::Unparseable), "{bad}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_full_number() {
        let phone = PhoneNumber::parse("+41791234567").expect("valid");
        let debug = format!("{phone:?}");
        assert!(!debug.contains("791234567"), "{debug}");
        assert!(debug.contains("+41******567"), "{debug}");
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = PhoneNumber::parse(&s);
        }

        #[test]
        fn a_parsed_number_parses_again_to_itself_and_any_other_is_refused_as_not_a_number(s in "\\+[1-9][0-9 ]{6,16}") {
            match PhoneNumber::parse(&s) {
                Ok(phone) => prop_assert_eq!(PhoneNumber::parse(phone.as_e164()), Ok(phone)),
                Err(refused) => prop_assert!(
                    matches!(refused, PhoneError::Unparseable | PhoneError::NotValid),
                    "{s:?}: {refused:?}"
                ),
            }
        }

        #[test]
        fn a_stored_number_reads_back_equal_to_the_parsed_one(
            number in prop_oneof!["\\+4179[0-9]{7}", "\\+4915[12][0-9]{8}", "\\+1415[2-9][0-9]{6}", "\\+35387[0-9]{7}", "\\+8613[0-9]{9}"]
        ) {
            let parsed = PhoneNumber::parse(&number).expect("a valid mobile number");
            let stored = PhoneNumber::from_stored(parsed.as_e164()).expect("E.164");
            prop_assert_eq!(stored.masked(), parsed.masked());
            prop_assert_eq!(stored, parsed);
        }

        #[test]
        fn every_valid_number_of_a_known_plan_parses_again_to_itself(
            number in prop_oneof!["\\+4179[0-9]{7}", "\\+4915[12][0-9]{8}", "\\+1415[2-9][0-9]{6}"]
        ) {
            let phone = PhoneNumber::parse(&number).expect("a valid mobile number");
            prop_assert_eq!(PhoneNumber::parse(phone.as_e164()), Ok(phone.clone()));
            prop_assert_eq!(phone.as_e164(), number.as_str());
        }

        #[test]
        fn swiss_mobile_numbers_in_any_spacing_normalise_alike(rest in "[0-9]{7}", sep in "[ .-]?") {
            let spaced = format!("+41{sep}79{sep}{}{sep}{}", &rest[..3], &rest[3..]);
            let phone = PhoneNumber::parse(&spaced).expect("Swiss mobile numbers are valid");
            prop_assert_eq!(phone.as_e164(), format!("+4179{rest}"));
            let masked = phone.masked();
            prop_assert!(masked.ends_with(&rest[4..]));
            prop_assert_eq!(masked.len(), phone.as_e164().len());
            prop_assert_eq!(masked.matches('*').count(), 6, "only +41 and the last three digits show");
        }
    }
}
