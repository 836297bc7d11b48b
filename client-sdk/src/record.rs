//! Field-level encryption of records: selected fields of a serde-serialisable record are
//! encrypted, each as its own envelope message; the rest (ids used for lookups) stays in clear.
//!
//! ```no_run
//! # async fn demo(envelope: kagi_sdk::Envelope) -> Result<(), kagi_sdk::Error> {
//! use kagi_sdk::{DataClass, RecordCipher, context};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Pupil {
//!     pupil_id: String,
//!     name: String,
//!     grades: Vec<u8>,
//! }
//!
//! let records = RecordCipher::new(envelope)
//!     .field("name", "school-1/personal", DataClass::I)
//!     .field("grades", "school-1/learning", DataClass::Ii);
//! let ctx = context([("school", "tokyo-01")]);
//! let pupil = Pupil { pupil_id: "p-0001".into(), name: "山田 花子".into(), grades: vec![5, 4] };
//!
//! let stored = records.encrypt(&pupil, &pupil.pupil_id, &ctx).await?;
//! assert_eq!(stored["pupil_id"], "p-0001");
//! assert!(stored["name"].as_str().unwrap().starts_with("kagi:v1:"));
//!
//! let back: Pupil = records.decrypt(&stored, "p-0001", &ctx).await?;
//! assert_eq!(back.name, "山田 花子");
//! # Ok(()) }
//! ```
//!
//! **Binding.** Each field is encrypted with the caller's context plus
//! [`RECORD_CONTEXT_KEY`] = the record id and [`FIELD_CONTEXT_KEY`] = the field name, so a field
//! value copied to another record, or moved to another field, fails to decrypt. The record id
//! is visible in every message and in the KMS audit trail: use an opaque id (a pupil number or
//! UUID), never a name or other personal data.
//!
//! **Class rule** (catalogue T2). Every field rule names the importance class of the data it
//! holds, I (most important) to IV. Before encrypting, the cipher reads the key's class from
//! kagid (`GetKey`, once per key reference) and refuses, before any data key is fetched, to
//! put data under a key of a less important class: class I data under a class II key is
//! refused, class III data under a class I key is fine.
//!
//! **Encoding.** A field's JSON value is serialised to bytes, encrypted with
//! [`Envelope::encrypt`] as a single-shot message, and replaced by the string
//! `"kagi:v1:" + base64(message)` (standard alphabet, with padding).
//!
//! **Cost.** Because every field of every record has its own context, the data-key cache does
//! not save `GenerateDataKey` calls here: each encrypted field costs one KMS call, and each
//! decrypted field one (the decrypt side of the cache helps when the same field is read again
//! within its TTL). In exchange every field access that reaches kagid is logged there with its
//! record id and field name; reads served by the decrypt cache are not.
//!
//! **Rotation.** [`RecordCipher::rewrap`] re-wraps every encrypted field of a stored record
//! under its key's current version, for the annual rotation job (catalogue K4).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::{Context, Envelope};
use crate::{Error, pb};

/// The prefix of every encrypted field value.
pub const FIELD_PREFIX: &str = "kagi:v1:";
/// The context key that binds a field to its record.
pub const RECORD_CONTEXT_KEY: &str = "kagi:record";
/// The context key that binds a field to its name.
pub const FIELD_CONTEXT_KEY: &str = "kagi:field";

/// The importance class of information (catalogue T2): I is the most important, IV the least.
///
/// The order follows importance: `DataClass::I > DataClass::Ii`.
///
/// ```
/// use kagi_sdk::DataClass;
///
/// assert!(DataClass::I > DataClass::Iv);
/// assert!(DataClass::Iii.may_use_key_of(DataClass::I));
/// assert!(!DataClass::I.may_use_key_of(DataClass::Ii));
/// assert_eq!(DataClass::Ii.to_string(), "II");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataClass {
    /// Class I: the most important (e.g. personal information, health, grades in 校務系).
    I,
    /// Class II.
    Ii,
    /// Class III.
    Iii,
    /// Class IV: the least important.
    Iv,
}

impl DataClass {
    /// The Roman numeral, 1 for I … 4 for IV.
    ///
    /// ```
    /// assert_eq!(kagi_sdk::DataClass::Iii.numeral(), 3);
    /// ```
    pub fn numeral(self) -> u8 {
        match self {
            DataClass::I => 1,
            DataClass::Ii => 2,
            DataClass::Iii => 3,
            DataClass::Iv => 4,
        }
    }

    /// Whether data of this class may be encrypted under a key of `key_class`: only if the key
    /// is of the same class or a more important one.
    ///
    /// ```
    /// use kagi_sdk::DataClass;
    ///
    /// assert!(DataClass::Ii.may_use_key_of(DataClass::Ii));
    /// assert!(!DataClass::Ii.may_use_key_of(DataClass::Iii));
    /// ```
    pub fn may_use_key_of(self, key_class: DataClass) -> bool {
        key_class >= self
    }

    /// The class of a protobuf value; `None` for unspecified or unknown values.
    ///
    /// ```
    /// use kagi_sdk::{DataClass, pb};
    ///
    /// assert_eq!(DataClass::from_pb(pb::ImportanceClass::ClassIi as i32), Some(DataClass::Ii));
    /// assert_eq!(DataClass::from_pb(0), None);
    /// ```
    pub fn from_pb(value: i32) -> Option<Self> {
        match pb::ImportanceClass::try_from(value).ok()? {
            pb::ImportanceClass::ClassI => Some(DataClass::I),
            pb::ImportanceClass::ClassIi => Some(DataClass::Ii),
            pb::ImportanceClass::ClassIii => Some(DataClass::Iii),
            pb::ImportanceClass::ClassIv => Some(DataClass::Iv),
            pb::ImportanceClass::Unspecified => None,
        }
    }

    /// The protobuf value of this class.
    ///
    /// ```
    /// use kagi_sdk::{DataClass, pb};
    ///
    /// assert_eq!(DataClass::I.to_pb(), pb::ImportanceClass::ClassI);
    /// ```
    pub fn to_pb(self) -> pb::ImportanceClass {
        match self {
            DataClass::I => pb::ImportanceClass::ClassI,
            DataClass::Ii => pb::ImportanceClass::ClassIi,
            DataClass::Iii => pb::ImportanceClass::ClassIii,
            DataClass::Iv => pb::ImportanceClass::ClassIv,
        }
    }
}

/// More important is greater: I > II > III > IV.
impl Ord for DataClass {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.numeral().cmp(&self.numeral())
    }
}

impl PartialOrd for DataClass {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for DataClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataClass::I => "I",
            DataClass::Ii => "II",
            DataClass::Iii => "III",
            DataClass::Iv => "IV",
        })
    }
}

/// How one field is encrypted: under which key, holding data of which class.
///
/// ```
/// use kagi_sdk::{DataClass, RecordCipher};
///
/// # fn demo(envelope: kagi_sdk::Envelope) {
/// let records = RecordCipher::new(envelope).field("name", "school-1/personal", DataClass::I);
/// let rule = records.rules().next().unwrap();
/// assert_eq!((rule.field(), rule.key(), rule.class()), ("name", "school-1/personal", DataClass::I));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    field: String,
    key: String,
    class: DataClass,
}

impl FieldRule {
    /// The field's name in the record's JSON object.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The key reference (key id or `TENANT/NAME`) the field is encrypted under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The importance class of the data in the field.
    pub fn class(&self) -> DataClass {
        self.class
    }
}

/// Why a record could not be encrypted or decrypted (inside [`Error::Record`]).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The data's class is more important than the key's (catalogue T2).
    #[error(
        "field {field:?} holds class {data_class} data, but key {key:?} is of class \
         {key_class}: data may only be encrypted under a key of its own class or a more \
         important one (catalogue T2); use a class {data_class} key for this field"
    )]
    ClassTooLow {
        /// The field.
        field: String,
        /// The key reference of its rule.
        key: String,
        /// The class of the data.
        data_class: DataClass,
        /// The class of the key, as kagid reports it.
        key_class: DataClass,
    },
    /// kagid reports no importance class for the key, so the rule cannot be checked.
    #[error(
        "key {key:?} has no importance class, so class {data_class} data cannot be checked against it"
    )]
    UnknownKeyClass {
        /// The key reference.
        key: String,
        /// The class of the data to be encrypted.
        data_class: DataClass,
    },
    /// The record does not serialise to a JSON object, or the value is not one.
    #[error("a record must be a JSON object (a struct or map), not {0}")]
    NotAnObject(&'static str),
    /// A field with a rule is absent from the record.
    #[error(
        "field {0:?} has an encryption rule but is absent from the record (use null, not \
         skip_serializing_if, for empty values)"
    )]
    MissingField(String),
    /// A field with a rule holds something other than an encrypted value.
    #[error("field {0:?} should be encrypted but does not hold a \"kagi:v1:\" value")]
    NotEncrypted(String),
    /// The caller's context uses a key the record cipher sets itself.
    #[error("the context key {0:?} is reserved for the record cipher")]
    ReservedContextKey(&'static str),
    /// The record could not be serialised or deserialised.
    #[error("record (de)serialisation failed: {0}")]
    Serde(#[from] serde_json::Error),
    /// An encrypted field's base64 or decrypted JSON is malformed.
    #[error("field {field:?} is malformed: {reason}")]
    Malformed {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Encrypting or decrypting one field failed (wrong record, wrong field, tampering, KMS).
    #[error("field {field:?}: {source}")]
    Field {
        /// The field.
        field: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
}

impl RecordError {
    fn field(field: &str, source: Error) -> Error {
        RecordError::Field {
            field: field.to_owned(),
            source: Box::new(source),
        }
        .into()
    }
}

/// Encrypts and decrypts selected fields of records with an [`Envelope`].
///
/// Built once (at start-up) with one [`field`](Self::field) rule per field to encrypt, then
/// shared: it is cheap to clone, and clones share the cache of key classes.
///
/// ```no_run
/// # async fn demo(kagi: kagi_sdk::Kagi) -> Result<(), kagi_sdk::Error> {
/// use kagi_sdk::{DataClass, Envelope, RecordCipher, context};
/// use serde_json::json;
///
/// let records = RecordCipher::new(Envelope::new(kagi))
///     .field("address", "school-1/personal", DataClass::I);
/// records.check_classes().await?; // fail at start-up rather than at the first record
/// let ctx = context([("school", "tokyo-01")]);
/// let stored = records
///     .encrypt(&json!({"pupil_id": "p-7", "address": "東京都…"}), "p-7", &ctx)
///     .await?;
/// let back: serde_json::Value = records.decrypt(&stored, "p-7", &ctx).await?;
/// assert_eq!(back["address"], "東京都…");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RecordCipher {
    envelope: Envelope,
    rules: BTreeMap<String, FieldRule>,
    classes: Arc<Mutex<HashMap<String, DataClass>>>,
}

impl fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordCipher")
            .field("envelope", &self.envelope)
            .field("rules", &self.rules.values().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RecordCipher {
    /// A record cipher with no field rules yet (it would leave every field in clear).
    ///
    /// ```no_run
    /// # fn demo(kagi: kagi_sdk::Kagi) {
    /// let records = kagi_sdk::RecordCipher::new(kagi_sdk::Envelope::new(kagi));
    /// # let _ = records; }
    /// ```
    pub fn new(envelope: Envelope) -> Self {
        Self {
            envelope,
            rules: BTreeMap::new(),
            classes: Arc::default(),
        }
    }

    /// Encrypts field `field` (a top-level field of the record's JSON object) under `key` (a
    /// key id or `TENANT/NAME`); `class` is the importance class of the data in it. A second
    /// rule for the same field replaces the first.
    ///
    /// ```no_run
    /// # fn demo(envelope: kagi_sdk::Envelope) {
    /// use kagi_sdk::{DataClass, RecordCipher};
    ///
    /// let records = RecordCipher::new(envelope)
    ///     .field("name", "school-1/personal", DataClass::I)
    ///     .field("activity", "school-1/learning", DataClass::Ii);
    /// # let _ = records; }
    /// ```
    pub fn field(mut self, field: &str, key: &str, class: DataClass) -> Self {
        let rule = FieldRule {
            field: field.to_owned(),
            key: key.to_owned(),
            class,
        };
        self.rules.insert(field.to_owned(), rule);
        self
    }

    /// The field rules, by field name.
    ///
    /// ```no_run
    /// # fn demo(records: kagi_sdk::RecordCipher) {
    /// for rule in records.rules() {
    ///     println!("{} → {} (class {})", rule.field(), rule.key(), rule.class());
    /// }
    /// # }
    /// ```
    pub fn rules(&self) -> impl Iterator<Item = &FieldRule> {
        self.rules.values()
    }

    /// The envelope the fields are encrypted with.
    ///
    /// ```no_run
    /// # fn demo(records: kagi_sdk::RecordCipher) {
    /// println!("{:?}", records.envelope().cache_stats());
    /// # }
    /// ```
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Checks every rule's class against its key's class in kagid, without encrypting
    /// anything: call it at start-up to find a misconfiguration early.
    ///
    /// ```no_run
    /// # async fn demo(records: kagi_sdk::RecordCipher) -> Result<(), kagi_sdk::Error> {
    /// records.check_classes().await?;
    /// # Ok(()) }
    /// ```
    pub async fn check_classes(&self) -> Result<(), Error> {
        for rule in self.rules.values() {
            self.check_rule(rule).await?;
        }
        Ok(())
    }

    /// The class of `key` according to kagid (`None` if it has none), cached per key
    /// reference (a key's class never changes).
    ///
    /// ```no_run
    /// # async fn demo(records: kagi_sdk::RecordCipher) -> Result<(), kagi_sdk::Error> {
    /// if let Some(class) = records.key_class("school-1/personal").await? {
    ///     println!("class {class}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn key_class(&self, key: &str) -> Result<Option<DataClass>, Error> {
        if let Some(class) = lock(&self.classes).get(key) {
            return Ok(Some(*class));
        }
        let kagi = self.envelope.kagi();
        let request = pb::GetKeyRequest {
            key: key.to_owned(),
        };
        let response = kagi.retry(|| {
            let mut client = kagi.keys();
            let request = request.clone();
            async move { client.get_key(request).await }
        });
        let found = response
            .await?
            .into_inner()
            .key
            .ok_or_else(|| Error::Protocol("GetKey returned no key".into()))?;
        let class = DataClass::from_pb(found.importance_class);
        if let Some(class) = class {
            lock(&self.classes).insert(key.to_owned(), class);
        }
        Ok(class)
    }

    async fn check_rule(&self, rule: &FieldRule) -> Result<(), Error> {
        let key_class =
            self.key_class(&rule.key)
                .await?
                .ok_or_else(|| RecordError::UnknownKeyClass {
                    key: rule.key.clone(),
                    data_class: rule.class,
                })?;
        if !rule.class.may_use_key_of(key_class) {
            return Err(RecordError::ClassTooLow {
                field: rule.field.clone(),
                key: rule.key.clone(),
                data_class: rule.class,
                key_class,
            }
            .into());
        }
        Ok(())
    }

    /// Encrypts the ruled fields of `record`, identified by `record_id`, binding `context`;
    /// returns the record as a JSON object with each ruled field replaced by a
    /// `"kagi:v1:…"` string and every other field as it was.
    ///
    /// Every rule's class is checked (see [`check_classes`](Self::check_classes)) before any
    /// field is encrypted. Fails if a ruled field is absent, or if `context` uses
    /// [`RECORD_CONTEXT_KEY`] or [`FIELD_CONTEXT_KEY`].
    ///
    /// ```no_run
    /// # async fn demo(records: kagi_sdk::RecordCipher) -> Result<(), kagi_sdk::Error> {
    /// let ctx = kagi_sdk::context([("school", "tokyo-01")]);
    /// let record = serde_json::json!({"pupil_id": "p-1", "name": "佐藤 健"});
    /// let stored = records.encrypt(&record, "p-1", &ctx).await?;
    /// println!("{stored}");
    /// # Ok(()) }
    /// ```
    pub async fn encrypt<T: Serialize + ?Sized>(
        &self,
        record: &T,
        record_id: &str,
        context: &Context,
    ) -> Result<Value, Error> {
        let mut value = serde_json::to_value(record).map_err(RecordError::from)?;
        let object = as_object(&mut value)?;
        for rule in self.rules.values() {
            if !object.contains_key(&rule.field) {
                return Err(RecordError::MissingField(rule.field.clone()).into());
            }
        }
        check_reserved(context)?;
        for rule in self.rules.values() {
            self.check_rule(rule).await?;
        }
        for rule in self.rules.values() {
            let slot = object.get_mut(&rule.field).expect("checked above");
            let plaintext =
                zeroize::Zeroizing::new(serde_json::to_vec(slot).map_err(RecordError::from)?);
            let ctx = field_context(context, record_id, &rule.field);
            let message = self
                .envelope
                .encrypt(&rule.key, &plaintext, &ctx)
                .await
                .map_err(|e| RecordError::field(&rule.field, e))?;
            *slot = Value::String(format!("{FIELD_PREFIX}{}", BASE64.encode(message)));
        }
        Ok(value)
    }

    /// Decrypts the ruled fields of a record made by [`encrypt`](Self::encrypt) for the same
    /// `record_id`, checking that each field was bound to this record, this field name and
    /// every pair of `context`, and deserialises the result.
    ///
    /// A ruled field that holds anything but a `"kagi:v1:"` value is refused (it was not
    /// encrypted, or was replaced in storage).
    ///
    /// ```no_run
    /// # async fn demo(records: kagi_sdk::RecordCipher, stored: serde_json::Value)
    /// # -> Result<(), kagi_sdk::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Pupil { pupil_id: String, name: String }
    ///
    /// let ctx = kagi_sdk::context([("school", "tokyo-01")]);
    /// let pupil: Pupil = records.decrypt(&stored, "p-1", &ctx).await?;
    /// # let _ = (pupil.pupil_id, pupil.name); Ok(()) }
    /// ```
    pub async fn decrypt<T: DeserializeOwned>(
        &self,
        value: &Value,
        record_id: &str,
        context: &Context,
    ) -> Result<T, Error> {
        check_reserved(context)?;
        let mut value = value.clone();
        let object = as_object(&mut value)?;
        for rule in self.rules.values() {
            let slot = object
                .get_mut(&rule.field)
                .ok_or_else(|| RecordError::MissingField(rule.field.clone()))?;
            let message = encrypted_bytes(slot, &rule.field)?;
            let ctx = field_context(context, record_id, &rule.field);
            let plaintext = self
                .envelope
                .decrypt(&message, &ctx)
                .await
                .map_err(|e| RecordError::field(&rule.field, e))?;
            *slot = serde_json::from_slice(&plaintext).map_err(|e| RecordError::Malformed {
                field: rule.field.clone(),
                reason: format!("the decrypted value is not JSON: {e}"),
            })?;
        }
        Ok(serde_json::from_value(value).map_err(RecordError::from)?)
    }

    /// Re-wraps the data key of every ruled field of a stored record under the current
    /// version of its key, through kagid (see [`Envelope::rewrap`]): the fields' bodies, and
    /// their binding to record id, field name and context, are kept as they are. For the
    /// annual rotation job (catalogue K4); needs no plaintext and reveals none.
    ///
    /// ```no_run
    /// # async fn demo(records: kagi_sdk::RecordCipher, stored: serde_json::Value)
    /// # -> Result<(), kagi_sdk::Error> {
    /// let rewrapped = records.rewrap(&stored).await?;
    /// // write `rewrapped` back in place of `stored`
    /// # let _ = rewrapped; Ok(()) }
    /// ```
    pub async fn rewrap(&self, value: &Value) -> Result<Value, Error> {
        let mut value = value.clone();
        let object = as_object(&mut value)?;
        for rule in self.rules.values() {
            let slot = object
                .get_mut(&rule.field)
                .ok_or_else(|| RecordError::MissingField(rule.field.clone()))?;
            let message = encrypted_bytes(slot, &rule.field)?;
            let rewrapped = self
                .envelope
                .rewrap(&message)
                .await
                .map_err(|e| RecordError::field(&rule.field, e))?;
            *slot = Value::String(format!("{FIELD_PREFIX}{}", BASE64.encode(rewrapped)));
        }
        Ok(value)
    }
}

/// The envelope message in an encrypted field's value.
fn encrypted_bytes(slot: &Value, field: &str) -> Result<Vec<u8>, RecordError> {
    let encoded = slot
        .as_str()
        .and_then(|s| s.strip_prefix(FIELD_PREFIX))
        .ok_or_else(|| RecordError::NotEncrypted(field.to_owned()))?;
    BASE64.decode(encoded).map_err(|e| RecordError::Malformed {
        field: field.to_owned(),
        reason: format!("bad base64: {e}"),
    })
}

/// The context of one field: the caller's, plus record id and field name.
fn field_context(context: &Context, record_id: &str, field: &str) -> Context {
    let mut ctx = context.clone();
    ctx.insert(RECORD_CONTEXT_KEY.to_owned(), record_id.to_owned());
    ctx.insert(FIELD_CONTEXT_KEY.to_owned(), field.to_owned());
    ctx
}

fn check_reserved(context: &Context) -> Result<(), RecordError> {
    for reserved in [RECORD_CONTEXT_KEY, FIELD_CONTEXT_KEY] {
        if context.contains_key(reserved) {
            return Err(RecordError::ReservedContextKey(reserved));
        }
    }
    Ok(())
}

fn as_object(value: &mut Value) -> Result<&mut serde_json::Map<String, Value>, RecordError> {
    let kind = match value {
        Value::Object(_) => "",
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
    };
    value.as_object_mut().ok_or(RecordError::NotAnObject(kind))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_order_by_importance() {
        assert!(DataClass::I > DataClass::Ii);
        assert!(DataClass::Iii > DataClass::Iv);
        // Data of class I needs a class I key.
        assert!(DataClass::I.may_use_key_of(DataClass::I));
        assert!(!DataClass::I.may_use_key_of(DataClass::Ii));
        // Less important data may use a more important key.
        assert!(DataClass::Iii.may_use_key_of(DataClass::I));
        assert!(DataClass::Iv.may_use_key_of(DataClass::Iv));
        for class in [DataClass::I, DataClass::Ii, DataClass::Iii, DataClass::Iv] {
            assert_eq!(DataClass::from_pb(class.to_pb() as i32), Some(class));
        }
    }

    #[test]
    fn field_context_adds_the_binding_and_keeps_the_callers_pairs() {
        let base = crate::context([("school", "tokyo-01")]);
        let ctx = field_context(&base, "p-1", "name");
        assert_eq!(ctx["school"], "tokyo-01");
        assert_eq!(ctx[RECORD_CONTEXT_KEY], "p-1");
        assert_eq!(ctx[FIELD_CONTEXT_KEY], "name");
        let reserved = crate::context([(RECORD_CONTEXT_KEY, "x")]);
        assert!(check_reserved(&reserved).is_err());
    }

    #[test]
    fn only_objects_are_records() {
        assert!(as_object(&mut serde_json::json!({"a": 1})).is_ok());
        let err = as_object(&mut serde_json::json!([1])).unwrap_err();
        assert!(err.to_string().contains("an array"), "{err}");
    }
}
