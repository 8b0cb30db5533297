//! Vigil's local stack, started one way by everyone who needs it: `vigil-stack up`, the
//! simulator's local-stack executor (scenarios, the demo, `bench-local`) and the integration
//! tests.
//!
//! # Layout
//! - [`functions`]: [`Functions`], the ingest and alert functions wired on an emulator in this
//!   process as their `main.rs` wires them in Lambda, with a clock a scenario can drive, and
//!   read-back of SMS and operator events; every function is one line of its table
//!   ([`Deployed`]: name, [`Trigger`], handler).
//! - [`stack`]: [`LocalStack`], the whole stack: emulator, functions, MQTT broker (TLS front
//!   with the shipped tag policy), IoT rule bridge and the alert queue's consumer; its env
//!   file; how it stops (Ctrl-C and SIGTERM alike); the error path to `rule-errors`; the
//!   optional fault proxy.
//! - [`invoke`]: [`InvokeApi`], the functions' Lambda Invoke API (`AWS_ENDPOINT_URL_LAMBDA`),
//!   through which `vigil dlq redrive` invokes ingest again as it would in AWS.
//! - [`iot_data`]: [`IotDataApi`], the IoT data plane's `Publish`
//!   (`AWS_ENDPOINT_URL_IOT_DATA_PLANE`), through which the alert function's commander (and
//!   `aws iot-data publish`) sends devices their commands over the local broker.
//! - [`console`]: [`LocalConsole`], the monitoring centre's console on the stack: the operator
//!   API (the Lambda's router) behind the local sign-in, and the built web app.
//! - [`sms_log`]: [`SmsLog`], when each SMS was sent (an interceptor on the functions' SNS
//!   client), for load runs' fix -> SMS latency.
//!
//! Binary: `vigil-stack up` (docs/MQTT.md, docs/LOCAL_STACK.md).

pub mod console;
pub mod functions;
pub mod invoke;
pub mod iot_data;
pub mod sms_log;
pub mod stack;

pub use console::LocalConsole;
pub use functions::{
    ALERT_TIMEOUT, ANCHOR_BATCH_SIZE, ANCHOR_WINDOW, AlertPorts, AnchorPorts, Deployed,
    FunctionOptions, Functions, Handler, IngestPorts, QUEUE_CONCURRENCY, Trigger,
};
pub use invoke::InvokeApi;
pub use iot_data::IotDataApi;
pub use sms_log::SmsLog;
pub use stack::{
    INGEST_CONCURRENCY, IngestRunner, LocalStack, StackClock, StackError, StackOptions,
    wait_for_stop_signal,
};
