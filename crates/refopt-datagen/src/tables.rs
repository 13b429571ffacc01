//! Row types of the input data contract v1 and their conversion to Arrow record batches.
//!
//! Each table has a plain Rust row struct (what the generator produces) and a `to_batch`
//! function that builds the contract's Arrow schema (`Timestamp(Microsecond, "UTC")`, UTF-8
//! strings, nullable columns marked `?` in `shared/data-contract.md`).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::error::ArrowError;

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn ts(name: &str) -> Field {
    Field::new(name, ts_type(), false)
}

fn finish_ts(mut b: TimestampMicrosecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone("UTC"))
}

/// A contract table: its name and whether it is day-partitioned (`dt=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Invites,
    Referrals,
    Conversions,
    Payouts,
    Partners,
    PartnerActivity,
    NpsResponses,
    FraudFlags,
    ComplianceEvents,
    ExperimentAssignments,
}

impl Table {
    /// Every table of the contract, in a stable order.
    pub const ALL: [Table; 10] = [
        Table::Invites,
        Table::Referrals,
        Table::Conversions,
        Table::Payouts,
        Table::Partners,
        Table::PartnerActivity,
        Table::NpsResponses,
        Table::FraudFlags,
        Table::ComplianceEvents,
        Table::ExperimentAssignments,
    ];

    /// The table's folder name under the data root.
    pub fn name(self) -> &'static str {
        match self {
            Table::Invites => "invites",
            Table::Referrals => "referrals",
            Table::Conversions => "conversions",
            Table::Payouts => "payouts",
            Table::Partners => "partners",
            Table::PartnerActivity => "partner_activity",
            Table::NpsResponses => "nps_responses",
            Table::FraudFlags => "fraud_flags",
            Table::ComplianceEvents => "compliance_events",
            Table::ExperimentAssignments => "experiment_assignments",
        }
    }

    /// Dimension tables live directly under `<root>/<table>/`; event tables are split by day.
    pub fn is_partitioned(self) -> bool {
        !matches!(self, Table::Partners)
    }
}

#[derive(Debug, Clone)]
pub struct Invite {
    pub invite_id: String,
    pub referrer_id: String,
    pub channel: &'static str,
    pub partner_id: Option<String>,
    pub region: &'static str,
    pub persona: &'static str,
    pub sent_at: Micros,
}

#[derive(Debug, Clone)]
pub struct Referral {
    pub referral_id: String,
    pub invite_id: Option<String>,
    pub referrer_id: String,
    pub referee_id: String,
    pub partner_id: Option<String>,
    pub channel: &'static str,
    pub region: &'static str,
    pub persona: &'static str,
    pub created_at: Micros,
    pub ip: String,
    pub device_id: String,
    pub email_domain: String,
    pub payment_fingerprint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Conversion {
    pub referral_id: String,
    pub stage: &'static str,
    pub occurred_at: Micros,
    pub amount: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Payout {
    pub payout_id: String,
    pub referral_id: String,
    pub recipient_id: String,
    pub recipient_type: &'static str,
    pub amount: f64,
    pub currency: &'static str,
    pub status: &'static str,
    pub created_at: Micros,
}

#[derive(Debug, Clone)]
pub struct Partner {
    pub partner_id: String,
    pub name: String,
    pub tier: &'static str,
    pub region: &'static str,
    pub joined_at: Micros,
    pub status: &'static str,
}

#[derive(Debug, Clone)]
pub struct PartnerActivity {
    pub partner_id: String,
    /// Days since the Unix epoch.
    pub activity_date: i32,
    pub logins: i64,
    pub content_shares: i64,
    pub mentions: i64,
}

#[derive(Debug, Clone)]
pub struct NpsResponse {
    pub response_id: String,
    pub respondent_type: &'static str,
    pub respondent_id: String,
    pub partner_id: Option<String>,
    pub channel: Option<&'static str>,
    pub region: &'static str,
    pub score: i64,
    pub responded_at: Micros,
}

#[derive(Debug, Clone)]
pub struct FraudFlag {
    pub referral_id: String,
    pub source: &'static str,
    pub reason: &'static str,
    pub flagged_at: Micros,
}

#[derive(Debug, Clone)]
pub struct ComplianceEvent {
    pub event_id: String,
    pub subject_type: &'static str,
    pub subject_id: String,
    pub check_name: &'static str,
    pub status: &'static str,
    pub at: Micros,
}

#[derive(Debug, Clone)]
pub struct ExperimentAssignment {
    pub experiment_id: &'static str,
    pub unit_id: String,
    pub variant: &'static str,
    pub assigned_at: Micros,
}

/// A row that knows its table, its event time (for the `dt=` partition) and its Arrow encoding.
pub trait ContractRow: Sized + Send + 'static {
    /// The table this row belongs to.
    const TABLE: Table;
    /// Event timestamp that decides the row's day partition.
    fn event_micros(&self) -> Micros;
    /// Encodes rows as one record batch in the contract's schema.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError>;
}

macro_rules! strings {
    ($rows:expr, $f:ident) => {{
        let mut b = StringBuilder::new();
        for r in $rows {
            b.append_value(&r.$f);
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

macro_rules! opt_strings {
    ($rows:expr, $f:ident) => {{
        let mut b = StringBuilder::new();
        for r in $rows {
            b.append_option(r.$f.as_deref());
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

macro_rules! timestamps {
    ($rows:expr, $f:ident) => {{
        let mut b = TimestampMicrosecondBuilder::new();
        for r in $rows {
            b.append_value(r.$f);
        }
        finish_ts(b)
    }};
}

macro_rules! int64s {
    ($rows:expr, $f:ident) => {{
        let mut b = Int64Builder::new();
        for r in $rows {
            b.append_value(r.$f);
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

impl ContractRow for Invite {
    const TABLE: Table = Table::Invites;
    fn event_micros(&self) -> Micros {
        self.sent_at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        batch(
            vec![
                utf8("invite_id", false),
                utf8("referrer_id", false),
                utf8("channel", false),
                utf8("partner_id", true),
                utf8("region", false),
                utf8("persona", false),
                ts("sent_at"),
            ],
            vec![
                strings!(rows, invite_id),
                strings!(rows, referrer_id),
                strings!(rows, channel),
                opt_strings!(rows, partner_id),
                strings!(rows, region),
                strings!(rows, persona),
                timestamps!(rows, sent_at),
            ],
        )
    }
}

impl ContractRow for Referral {
    const TABLE: Table = Table::Referrals;
    fn event_micros(&self) -> Micros {
        self.created_at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        batch(
            vec![
                utf8("referral_id", false),
                utf8("invite_id", true),
                utf8("referrer_id", false),
                utf8("referee_id", false),
                utf8("partner_id", true),
                utf8("channel", false),
                utf8("region", false),
                utf8("persona", false),
                ts("created_at"),
                utf8("ip", false),
                utf8("device_id", false),
                utf8("email_domain", false),
                utf8("payment_fingerprint", true),
            ],
            vec![
                strings!(rows, referral_id),
                opt_strings!(rows, invite_id),
                strings!(rows, referrer_id),
                strings!(rows, referee_id),
                opt_strings!(rows, partner_id),
                strings!(rows, channel),
                strings!(rows, region),
                strings!(rows, persona),
                timestamps!(rows, created_at),
                strings!(rows, ip),
                strings!(rows, device_id),
                strings!(rows, email_domain),
                opt_strings!(rows, payment_fingerprint),
            ],
        )
    }
}

impl ContractRow for Conversion {
    const TABLE: Table = Table::Conversions;
    fn event_micros(&self) -> Micros {
        self.occurred_at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let mut amount = Float64Builder::new();
        for r in rows {
            amount.append_option(r.amount);
        }
        batch(
            vec![
                utf8("referral_id", false),
                utf8("stage", false),
                ts("occurred_at"),
                Field::new("amount", DataType::Float64, true),
            ],
            vec![
                strings!(rows, referral_id),
                strings!(rows, stage),
                timestamps!(rows, occurred_at),
                Arc::new(amount.finish()),
            ],
        )
    }
}

impl ContractRow for Payout {
    const TABLE: Table = Table::Payouts;
    fn event_micros(&self) -> Micros {
        self.created_at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let mut amount = Float64Builder::new();
        for r in rows {
            amount.append_value(r.amount);
        }
        batch(
            vec![
                utf8("payout_id", false),
                utf8("referral_id", false),
                utf8("recipient_id", false),
                utf8("recipient_type", false),
                Field::new("amount", DataType::Float64, false),
                utf8("currency", false),
                utf8("status", false),
                ts("created_at"),
            ],
            vec![
                strings!(rows, payout_id),
                strings!(rows, referral_id),
                strings!(rows, recipient_id),
                strings!(rows, recipient_type),
                Arc::new(amount.finish()),
                strings!(rows, currency),
                strings!(rows, status),
                timestamps!(rows, created_at),
            ],
        )
    }
}

impl ContractRow for Partner {
    const TABLE: Table = Table::Partners;
    fn event_micros(&self) -> Micros {
        self.joined_at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        batch(
            vec![
                utf8("partner_id", false),
                utf8("name", false),
                utf8("tier", false),
                utf8("region", false),
                ts("joined_at"),
                utf8("status", false),
            ],
            vec![
                strings!(rows, partner_id),
                strings!(rows, name),
                strings!(rows, tier),
                strings!(rows, region),
                timestamps!(rows, joined_at),
                strings!(rows, status),
            ],
        )
    }
}

impl ContractRow for PartnerActivity {
    const TABLE: Table = Table::PartnerActivity;
    fn event_micros(&self) -> Micros {
        i64::from(self.activity_date) * 86_400_000_000
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let mut date = Date32Builder::new();
        for r in rows {
            date.append_value(r.activity_date);
        }
        batch(
            vec![
                utf8("partner_id", false),
                Field::new("activity_date", DataType::Date32, false),
                Field::new("logins", DataType::Int64, false),
                Field::new("content_shares", DataType::Int64, false),
                Field::new("mentions", DataType::Int64, false),
            ],
            vec![
                strings!(rows, partner_id),
                Arc::new(date.finish()),
                int64s!(rows, logins),
                int64s!(rows, content_shares),
                int64s!(rows, mentions),
            ],
        )
    }
}

impl ContractRow for NpsResponse {
    const TABLE: Table = Table::NpsResponses;
    fn event_micros(&self) -> Micros {
        self.responded_at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let mut channel = StringBuilder::new();
        for r in rows {
            channel.append_option(r.channel);
        }
        batch(
            vec![
                utf8("response_id", false),
                utf8("respondent_type", false),
                utf8("respondent_id", false),
                utf8("partner_id", true),
                utf8("channel", true),
                utf8("region", false),
                Field::new("score", DataType::Int64, false),
                ts("responded_at"),
            ],
            vec![
                strings!(rows, response_id),
                strings!(rows, respondent_type),
                strings!(rows, respondent_id),
                opt_strings!(rows, partner_id),
                Arc::new(channel.finish()),
                strings!(rows, region),
                int64s!(rows, score),
                timestamps!(rows, responded_at),
            ],
        )
    }
}

impl ContractRow for FraudFlag {
    const TABLE: Table = Table::FraudFlags;
    fn event_micros(&self) -> Micros {
        self.flagged_at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        batch(
            vec![
                utf8("referral_id", false),
                utf8("source", false),
                utf8("reason", false),
                ts("flagged_at"),
            ],
            vec![
                strings!(rows, referral_id),
                strings!(rows, source),
                strings!(rows, reason),
                timestamps!(rows, flagged_at),
            ],
        )
    }
}

impl ContractRow for ComplianceEvent {
    const TABLE: Table = Table::ComplianceEvents;
    fn event_micros(&self) -> Micros {
        self.at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        batch(
            vec![
                utf8("event_id", false),
                utf8("subject_type", false),
                utf8("subject_id", false),
                utf8("check_name", false),
                utf8("status", false),
                ts("at"),
            ],
            vec![
                strings!(rows, event_id),
                strings!(rows, subject_type),
                strings!(rows, subject_id),
                strings!(rows, check_name),
                strings!(rows, status),
                timestamps!(rows, at),
            ],
        )
    }
}

impl ContractRow for ExperimentAssignment {
    const TABLE: Table = Table::ExperimentAssignments;
    fn event_micros(&self) -> Micros {
        self.assigned_at
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        batch(
            vec![
                utf8("experiment_id", false),
                utf8("unit_id", false),
                utf8("variant", false),
                ts("assigned_at"),
            ],
            vec![
                strings!(rows, experiment_id),
                strings!(rows, unit_id),
                strings!(rows, variant),
                timestamps!(rows, assigned_at),
            ],
        )
    }
}

/// Label of one planted referral (written under `_truth/`, never read by the pipeline): the
/// fraud pattern of a fraudulent referral, or the kind of legitimate look-alike of an honest one.
#[derive(Debug, Clone)]
pub struct TruthLabel {
    pub referral_id: String,
    pub pattern: &'static str,
    pub created_at: Micros,
}

impl TruthLabel {
    /// Encodes label rows (referral_id, `label_column`, created_at).
    pub fn to_batch(rows: &[Self], label_column: &str) -> Result<RecordBatch, ArrowError> {
        batch(
            vec![
                utf8("referral_id", false),
                utf8(label_column, false),
                ts("created_at"),
            ],
            vec![
                strings!(rows, referral_id),
                strings!(rows, pattern),
                timestamps!(rows, created_at),
            ],
        )
    }
}
