//! [`SmsLog`]: when each SMS was sent, as the alert function saw it. An SDK interceptor on the
//! functions' SNS client records the moment each `Publish` to a phone number was answered
//! (the emulator has recorded the SMS by then), and to which number: the emulator keeps the
//! SMS but not their times, and a load run measures fix published -> SMS sent. Local tools
//! only: numbers stay in memory, never in a log line.

use aws_sdk_sns::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_sns::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sns::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use std::sync::{Arc, Mutex};

/// One SMS: when `Publish` was answered, and the number.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsSent {
    /// When the emulator answered the `Publish`: the wall clock, Unix ms with a fraction (a
    /// load run's tags, in another process, time their publishes on the same clock).
    pub at_ms: f64,
    /// The destination, E.164, as published.
    pub phone_number: String,
}

/// Every SMS the functions' SNS client sent, in the order the answers came. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct SmsLog(Arc<Mutex<Vec<SmsSent>>>);

impl SmsLog {
    /// An empty log.
    pub fn new() -> SmsLog {
        SmsLog::default()
    }

    /// What was sent so far.
    pub fn sent(&self) -> Vec<SmsSent> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The number of an SMS `Publish` in flight, kept from transmit to the answer.
#[derive(Debug, Clone)]
struct Destination(String);

impl Storable for Destination {
    type Storer = StoreReplace<Self>;
}

/// The `PhoneNumber` of an SNS query-protocol request body
/// (`Action=Publish&PhoneNumber=%2B4477...&Message=...`), decoded; `None` for any other request.
pub fn phone_number_of(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let mut publish = false;
    let mut number = None;
    for pair in body.split('&') {
        match pair.split_once('=') {
            Some(("Action", "Publish")) => publish = true,
            Some(("PhoneNumber", value)) => number = Some(percent_decode(value)?),
            _ => {}
        }
    }
    number.filter(|_| publish)
}

/// `%XX` and `+` decoded as in `application/x-www-form-urlencoded`; `None` if malformed.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl Intercept for SmsLog {
    fn name(&self) -> &'static str {
        "SmsLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(number) = context.request().body().bytes().and_then(phone_number_of) {
            cfg.interceptor_state().store_put(Destination(number));
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Destination(number)) = cfg.load::<Destination>()
            && context.response().status().is_success()
        {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(SmsSent {
                    at_ms: vigil_mqtt::bridge::wall_ms(),
                    phone_number: number.clone(),
                });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_of_an_sms_publish_is_read_and_others_are_not() {
        let sms =
            b"Action=Publish&Version=2010-03-31&PhoneNumber=%2B447700900123&Message=Leave+now";
        assert_eq!(phone_number_of(sms).as_deref(), Some("+447700900123"));
        let topic = b"Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aeu-west-2%3A1%3Aops&Message=x";
        assert_eq!(phone_number_of(topic), None);
        let other = b"Action=SetSMSAttributes&PhoneNumber=%2B447700900123";
        assert_eq!(phone_number_of(other), None);
        assert_eq!(phone_number_of(b"Action=Publish&PhoneNumber=%2"), None);
    }
}
