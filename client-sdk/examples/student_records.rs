//! Field-level encryption of pupil records stored in SQLite, with [`RecordCipher`].
//!
//! Synthetic pupils (names made up from short lists, fictional addresses: no real personal
//! data, catalogue T5) are encrypted field by field before they reach the database:
//!
//! | field | stored as | key |
//! |---|---|---|
//! | pupil id, school code | clear (lookup columns) | — |
//! | name, address, birth date | `kagi:v1:…` | personal-information key, class I |
//! | grades, activity record | `kagi:v1:…` | learning-record key, class II |
//!
//! then read back by school code and decrypted. Every field is bound to its pupil id and its
//! column name, so a value copied to another row or column does not decrypt.
//!
//! Set-up against a dev kagid (the admin token is the one `kagid --dev` prints):
//!
//! ```text
//! cargo run -p kagi-kms --bin kagid -- --dev --listen 127.0.0.1:7878 --data-dir /tmp/kagi-dev
//! # in another shell, with the two export lines kagid printed (endpoint and admin token):
//! kagictl tenant create school-1
//! kagictl key create --tenant school-1 --name personal --purpose personal-information --class I
//! kagictl key create --tenant school-1 --name learning --purpose learning-record --class II
//! kagictl principal create --role tenant-service --tenant school-1 --name records-app
//! # the example runs as the service: use the token `principal create` printed
//! export KAGI_TOKEN=kagi_…
//! cargo run -p kagi-sdk --example student_records -- school-1/personal school-1/learning
//! ```
//!
//! Inputs: `KAGI_ENDPOINT` (default `http://127.0.0.1:7878`), `KAGI_TOKEN` (a tenant-service
//! token), `KAGI_CA_CERT` (a PEM CA file, for an `https://` endpoint), the two key references
//! as arguments or in `KAGI_PERSONAL_KEY` and `KAGI_LEARNING_KEY`, and `KAGI_EXAMPLE_DB` (a
//! SQLite file to keep the table in; in memory by default).

use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;

use kagi_sdk::{DataClass, Envelope, Kagi, RecordCipher, Tls, context};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, Row, SqliteConnection};

/// A pupil as the application sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pupil {
    /// Opaque pupil number: a lookup key, kept in clear and bound into every field's context.
    pupil_id: String,
    /// School code: a lookup key, kept in clear.
    school_code: String,
    /// Personal information (class I).
    name: String,
    address: String,
    birth_date: String,
    /// Learning records (class II): subject → grade 1–5.
    grades: BTreeMap<String, u8>,
    activity: Vec<String>,
}

const SURNAMES: [&str; 6] = ["山田", "佐藤", "鈴木", "高橋", "田中", "伊藤"];
const GIVEN_NAMES: [&str; 6] = ["花子", "太郎", "陽菜", "蓮", "さくら", "悠真"];
const SUBJECTS: [&str; 4] = ["国語", "算数", "理科", "社会"];
const ACTIVITIES: [&str; 5] = ["図書委員", "合唱コンクール", "運動会", "飼育係", "書き初め"];
/// The schools of the example (made-up codes).
const SCHOOLS: [&str; 2] = ["13-0001", "13-0002"];

/// The `i`-th synthetic pupil: deterministic, from the small lists above.
fn synthetic_pupil(i: usize) -> Pupil {
    let grades = SUBJECTS
        .iter()
        .enumerate()
        .map(|(s, subject)| (subject.to_string(), (1 + (i * 3 + s * 2) % 5) as u8))
        .collect();
    Pupil {
        pupil_id: format!("p-{:04}", i + 1),
        school_code: SCHOOLS[i % SCHOOLS.len()].to_owned(),
        name: format!(
            "{} {}",
            SURNAMES[i % SURNAMES.len()],
            GIVEN_NAMES[(i * 5 + 1) % GIVEN_NAMES.len()]
        ),
        address: format!("東京都架空区試験町{}-{}-{}", 1 + i % 4, 1 + i % 9, 10 + i),
        birth_date: format!("2014-{:02}-{:02}", 1 + i % 12, 1 + (i * 7) % 28),
        grades,
        activity: vec![
            ACTIVITIES[i % ACTIVITIES.len()].to_owned(),
            ACTIVITIES[(i + 2) % ACTIVITIES.len()].to_owned(),
        ],
    }
}

/// The columns that hold encrypted values, in table order.
const ENCRYPTED_COLUMNS: [&str; 5] = ["name", "address", "birth_date", "grades", "activity"];

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("student_records: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let personal_key = key_reference(args.next(), "KAGI_PERSONAL_KEY")?;
    let learning_key = key_reference(args.next(), "KAGI_LEARNING_KEY")?;

    let kagi = connect().await?;
    let records = RecordCipher::new(Envelope::new(kagi))
        .field("name", &personal_key, DataClass::I)
        .field("address", &personal_key, DataClass::I)
        .field("birth_date", &personal_key, DataClass::I)
        .field("grades", &learning_key, DataClass::Ii)
        .field("activity", &learning_key, DataClass::Ii);
    // Refuse at start-up if a key's class is too low for its fields (catalogue T2).
    records.check_classes().await?;
    // Identifies the application and table; never personal data (it is visible and logged).
    let ctx = context([("app", "student-records-example"), ("table", "pupils")]);

    let database = std::env::var("KAGI_EXAMPLE_DB")
        .map(|path| format!("sqlite://{path}?mode=rwc"))
        .unwrap_or_else(|_| "sqlite::memory:".to_owned());
    let mut db = SqliteConnection::connect(&database).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS pupils (
            pupil_id TEXT PRIMARY KEY,
            school_code TEXT NOT NULL,
            name TEXT NOT NULL,
            address TEXT NOT NULL,
            birth_date TEXT NOT NULL,
            grades TEXT NOT NULL,
            activity TEXT NOT NULL
        )",
    )
    .execute(&mut db)
    .await?;

    let pupils: Vec<Pupil> = (0..6).map(synthetic_pupil).collect();
    for pupil in &pupils {
        let stored = records.encrypt(pupil, &pupil.pupil_id, &ctx).await?;
        let column = |name: &str| stored[name].as_str().unwrap_or_default().to_owned();
        sqlx::query(
            "INSERT OR REPLACE INTO pupils
             (pupil_id, school_code, name, address, birth_date, grades, activity)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&pupil.pupil_id)
        .bind(&pupil.school_code)
        .bind(column("name"))
        .bind(column("address"))
        .bind(column("birth_date"))
        .bind(column("grades"))
        .bind(column("activity"))
        .execute(&mut db)
        .await?;
    }
    println!("stored {} pupils; what the database holds:", pupils.len());
    let row = sqlx::query("SELECT pupil_id, school_code, name FROM pupils ORDER BY pupil_id")
        .fetch_one(&mut db)
        .await?;
    let name: String = row.try_get("name")?;
    println!(
        "  {} | {} | name = {}… ({} characters)\n",
        row.try_get::<String, _>("pupil_id")?,
        row.try_get::<String, _>("school_code")?,
        &name[..32.min(name.len())],
        name.len()
    );

    let school = SCHOOLS[0];
    let rows = sqlx::query(
        "SELECT pupil_id, school_code, name, address, birth_date, grades, activity
         FROM pupils WHERE school_code = ? ORDER BY pupil_id",
    )
    .bind(school)
    .fetch_all(&mut db)
    .await?;
    println!("school {school}, read back and decrypted:");
    let widths = [8, 12, 11, 32, 26];
    println!(
        "{}activity",
        row_text(&["pupil", "name", "born", "address", "grades"], &widths)
    );
    for row in rows {
        let mut stored = serde_json::Map::new();
        for column in ["pupil_id", "school_code"].iter().chain(&ENCRYPTED_COLUMNS) {
            stored.insert(
                column.to_string(),
                row.try_get::<String, _>(*column)?.into(),
            );
        }
        let pupil_id = stored["pupil_id"].as_str().unwrap_or_default().to_owned();
        let pupil: Pupil = records
            .decrypt(&serde_json::Value::Object(stored), &pupil_id, &ctx)
            .await?;
        assert!(pupils.contains(&pupil), "the round trip changed a record");
        let grades: Vec<String> = pupil
            .grades
            .iter()
            .map(|(subject, grade)| format!("{subject}{grade}"))
            .collect();
        let cells = [
            pupil.pupil_id.as_str(),
            &pupil.name,
            &pupil.birth_date,
            &pupil.address,
            &grades.join(" "),
        ];
        println!("{}{}", row_text(&cells, &widths), pupil.activity.join("・"));
    }
    db.close().await?;
    Ok(())
}

/// Cells padded to column widths, counting CJK characters as two columns as terminals do.
fn row_text(cells: &[&str], widths: &[usize]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        let used: usize = cell.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
        line.push_str(cell);
        line.push_str(&" ".repeat(width.saturating_sub(used) + 1));
    }
    line
}

/// A key reference from the command line or, failing that, the environment.
fn key_reference(arg: Option<String>, env: &str) -> Result<String, Box<dyn Error>> {
    arg.or_else(|| std::env::var(env).ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            format!(
                "give the key references as arguments (PERSONAL_KEY LEARNING_KEY) or in \
                 KAGI_PERSONAL_KEY and KAGI_LEARNING_KEY; {env} is missing"
            )
            .into()
        })
}

/// Connects with `KAGI_ENDPOINT`, `KAGI_TOKEN` and (for https) `KAGI_CA_CERT`.
async fn connect() -> Result<Kagi, Box<dyn Error>> {
    let endpoint =
        std::env::var("KAGI_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:7878".to_owned());
    let token = std::env::var("KAGI_TOKEN")
        .map_err(|_| "set KAGI_TOKEN to a tenant-service token (kagictl principal create)")?;
    let mut builder = Kagi::connect(endpoint).token(token);
    if let Ok(ca) = std::env::var("KAGI_CA_CERT") {
        builder = builder.tls(Tls {
            ca_pem: std::fs::read(&ca).map_err(|e| format!("{ca}: {e}"))?,
            ..Tls::default()
        });
    }
    Ok(builder.build().await?)
}
