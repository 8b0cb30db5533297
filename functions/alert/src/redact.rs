//! Victims' phone numbers out of error texts: SNS may quote the number back in an error, and
//! errors are logged.

use vigil_aws::StoreError;
use vigil_core::PhoneNumber;

/// Replaces the victim's number in an error's text by its redacted form.
pub fn redact_phone(err: StoreError, phone: &PhoneNumber) -> StoreError {
    let full = phone.e164();
    let digits = &full[1..];
    let clean = |s: String| {
        if s.contains(digits) {
            s.replace(full, &phone.redacted())
                .replace(digits, &phone.redacted())
        } else {
            s
        }
    };
    match err {
        StoreError::Throttled { service, code } => StoreError::Throttled {
            service,
            code: clean(code),
        },
        StoreError::Unavailable { service, detail } => StoreError::Unavailable {
            service,
            detail: clean(detail),
        },
        StoreError::Conflict { what } => StoreError::Conflict { what: clean(what) },
        StoreError::Corrupt { what, detail } => StoreError::Corrupt {
            what: clean(what),
            detail: clean(detail),
        },
        StoreError::Rejected {
            service,
            code,
            detail,
        } => StoreError::Rejected {
            service,
            code: clean(code),
            detail: clean(detail),
        },
        StoreError::Config(detail) => StoreError::Config(clean(detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_never_survives_in_an_error() {
        let phone = PhoneNumber::new("+447700900123").unwrap();
        let e = redact_phone(
            StoreError::Rejected {
                service: "sns",
                code: "InvalidParameter".into(),
                detail: "Invalid phone number +447700900123 (447700900123)".into(),
            },
            &phone,
        );
        let text = e.to_string();
        assert!(!text.contains("7700900"), "{text}");
        assert!(text.contains("+44…23"), "{text}");
    }
}
