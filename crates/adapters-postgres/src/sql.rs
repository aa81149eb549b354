//! Every statement the store sends, as text: one round trip each. Public so the benchmark
//! can replay exactly these statements through pgbench and measure the database's limit.
//!
//! Parameters are cast where they appear, so the statements also prepare without the
//! parameter types sqlx sends (as pgbench prepares them).
//!
//! A decision is applied by one data-modifying statement: `moved` moves the user from the
//! version read to the next one (or deletes it) and yields a row only while the user is
//! still at the version read, in the organization read; every other part runs only if
//! `moved` did, and the user's row lock, taken first, orders all writes to one user.
//! Parameters shared by every decision:
//!
//! | | |
//! |---|---|
//! | `$1` | instance id |
//! | `$2` | user id |
//! | `$3`, `$4` | the version read: sequence, changed |
//! | `$5`, `$6` | the next version: sequence, changed (also the event's number and time) |
//! | `$7` | aggregate type (`user`) |
//! | `$8`, `$9`, `$10` | the event's type, payload and creator |
//! | `$11` | the user's organization, as the decision read it |
//!
//! The statement answers one row, the number of users moved: 1 applied, 0 refused.

use factors_adapters_sql::{session_columns, user_columns};

/// Settings of every session the store's statements run in.
///
/// `plan_cache_mode = force_generic_plan`: every statement here finds its rows by key, so
/// one plan per statement and connection serves every execution. Left to itself,
/// PostgreSQL kept planning the guarded writes anew for each execution (their generic
/// plan's estimate loses to the custom plans'), which cost it about a third more CPU per
/// removal (bench/REPORT.md). The benchmark gives pgbench the same settings.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[("plan_cache_mode", "force_generic_plan")];

/// The user and its authenticators, oldest first, one row per authenticator (one row with
/// empty authenticator columns when it holds none). `$1` instance, `$2` user.
pub const LOAD_USER: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", a.id AS otp_id, a.phone AS otp_phone, a.verified AS otp_verified, a.created_at AS otp_created_at \
     FROM users u LEFT JOIN otp_sms_authenticators a ON a.instance_id = u.instance_id AND a.user_id = u.id \
     WHERE u.instance_id = $1::text AND u.id = $2::text \
     ORDER BY a.created_at, a.id"
);

/// As [`LOAD_USER`], with the code pending for authenticator `$3` on its row.
pub const LOAD_USER_WITH_CODE: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", a.id AS otp_id, a.phone AS otp_phone, a.verified AS otp_verified, a.created_at AS otp_created_at, \
     c.code_hash, c.expires_at, c.failed_attempts \
     FROM users u LEFT JOIN otp_sms_authenticators a ON a.instance_id = u.instance_id AND a.user_id = u.id \
     LEFT JOIN otp_sms_codes c ON c.instance_id = a.instance_id AND c.otp_sms_id = a.id AND a.id = $3::text \
     WHERE u.instance_id = $1::text AND u.id = $2::text \
     ORDER BY a.created_at, a.id"
);

/// The number of the last event of a user id over all its lives (0 when none). `$1`
/// instance, `$2` aggregate type, `$3` user.
pub const LAST_SEQUENCE: &str = "SELECT COALESCE(MAX(sequence), 0)::bigint FROM events \
     WHERE instance_id = $1::text AND aggregate_type = $2::text AND aggregate_id = $3::text";

/// The users a search selects: of instance `$1`, and of each condition not null: `$2`
/// organizations (`text[]`) the user's is among, `$3` its organization, `$4` its id, `$5`
/// its state. [`SEARCH_USERS_COUNT`] and [`SEARCH_USERS_PAGE`] select the same users.
macro_rules! searched_users {
    () => {
        "FROM users u WHERE u.instance_id = $1::text \
         AND ($2::text[] IS NULL OR u.org_id = ANY($2::text[])) AND ($3::text IS NULL OR u.org_id = $3::text) \
         AND ($4::text IS NULL OR u.id = $4::text) AND ($5::smallint IS NULL OR u.state = $5::smallint)"
    };
}

/// How many users a search selects in all (see [`searched_users!`] for `$1` to `$5`).
pub const SEARCH_USERS_COUNT: &str = concat!("SELECT count(*) ", searched_users!());

/// The ids of one page of the users a search selects (see [`searched_users!`] for `$1` to
/// `$5`): sorted by `$6` (`id`, `created`, `changed` or `state`) and then by id, both
/// descending when `$7`; the first `$9` skipped, at most `$8`. Each sort key is a `CASE` that
/// is null (and so sorts nothing) unless `$6` and `$7` pick it, so the statement is one
/// for every order. Ids sort byte by byte (`COLLATE "C"`), as SQLite sorts them, whatever
/// the database's collation.
pub const SEARCH_USERS_PAGE: &str = concat!(
    "SELECT u.id ",
    searched_users!(),
    " ORDER BY CASE WHEN $6::text = 'created' AND NOT $7::boolean THEN u.created_at END ASC, \
     CASE WHEN $6::text = 'created' AND $7::boolean THEN u.created_at END DESC, \
     CASE WHEN $6::text = 'changed' AND NOT $7::boolean THEN u.changed_at END ASC, \
     CASE WHEN $6::text = 'changed' AND $7::boolean THEN u.changed_at END DESC, \
     CASE WHEN $6::text = 'state' AND NOT $7::boolean THEN u.state END ASC, \
     CASE WHEN $6::text = 'state' AND $7::boolean THEN u.state END DESC, \
     CASE WHEN NOT $7::boolean THEN u.id END COLLATE \"C\" ASC, CASE WHEN $7::boolean THEN u.id END COLLATE \"C\" DESC \
     LIMIT $8::bigint OFFSET $9::bigint"
);

/// A new user and its first event: `$1` instance, `$2` user, `$3` org, `$4` state, `$5`
/// schema, `$6` data, `$7` email, `$8` email verified, `$9` phone, `$10` phone verified,
/// `$11` created (and changed), `$12` sequence, `$13` aggregate type, `$14` event type,
/// `$15` payload, `$16` creator. Answers the number of users inserted: 0 when the id is
/// taken. An event number taken by another life of the id fails the statement (unique).
pub const CREATE_USER: &str = "WITH inserted AS ( \
         INSERT INTO users (instance_id, id, org_id, state, schema_id, data, email, email_verified, phone, \
                            phone_verified, created_at, changed_at, sequence) \
         VALUES ($1::text, $2::text, $3::text, $4::smallint, $5::text, $6::jsonb, $7::text, $8::boolean, $9::text, \
                 $10::boolean, $11::timestamptz, $11::timestamptz, $12::bigint) \
         ON CONFLICT (instance_id, id) DO NOTHING RETURNING 1 \
     ), appended AS ( \
         INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, \
                             created_at) \
         SELECT $1::text, $13::text, $2::text, $12::bigint, $14::text, $15::jsonb, $16::text, $11::timestamptz \
         FROM inserted \
     ) SELECT count(*) FROM inserted";

/// A decision's statement: `$move` moves (or deletes) the user under the guard, each
/// `$change` is a further data-modifying part that runs only if it did, and the event is
/// appended.
macro_rules! decision {
    (guard: $guard:expr, $move:expr $(, $change:literal)*) => {
        concat!(
            "WITH moved AS (",
            $move,
            " WHERE instance_id = $1::text AND id = $2::text AND org_id = $11::text AND sequence = $3::bigint \
             AND changed_at = $4::timestamptz",
            $guard,
            " RETURNING 1)",
            $(", ", $change,)*
            ", appended AS (INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, \
             payload, creator, created_at) SELECT $1::text, $7::text, $2::text, $5::bigint, $8::text, $9::jsonb, \
             $10::text, $6::timestamptz FROM moved) SELECT count(*) FROM moved"
        )
    };
    ($move:expr $(, $change:literal)*) => {
        decision!(guard: "", $move $(, $change)*)
    };
}

/// Moves the user to the next version.
macro_rules! move_user {
    () => {
        "UPDATE users SET sequence = $5::bigint, changed_at = $6::timestamptz"
    };
}

/// Adds authenticator `$12` (phone `$13`, verified `$14`, created `$15`) with its pending
/// code (hash `$16`, expiry `$17`, failed tries `$18`; no code when `$16` is null).
pub const ADD_OTP_SMS: &str = decision!(
    move_user!(),
    "added AS (INSERT INTO otp_sms_authenticators (instance_id, id, user_id, phone, verified, created_at) \
     SELECT $1::text, $12::text, $2::text, $13::text, $14::boolean, $15::timestamptz FROM moved)",
    "coded AS (INSERT INTO otp_sms_codes (instance_id, otp_sms_id, code_hash, expires_at, failed_attempts, created_at) \
     SELECT $1::text, $12::text, $16::bytea, $17::timestamptz, $18::integer, $15::timestamptz FROM moved \
     WHERE $16::bytea IS NOT NULL)"
);

/// Puts the user in state `$12` (locks, unlocks, deactivates or activates it) as it moves it.
pub const SET_STATE: &str =
    decision!("UPDATE users SET sequence = $5::bigint, changed_at = $6::timestamptz, state = $12::smallint");

/// Uses up the pending code of authenticator `$12` and marks it verified.
pub const VERIFY_OTP_SMS: &str = decision!(
    move_user!(),
    "used AS (DELETE FROM otp_sms_codes WHERE instance_id = $1::text AND otp_sms_id = $12::text \
     AND EXISTS (SELECT FROM moved))",
    "verified AS (UPDATE otp_sms_authenticators SET verified = TRUE \
     WHERE instance_id = $1::text AND user_id = $2::text AND id = $12::text AND EXISTS (SELECT FROM moved))"
);

/// The guard of a decision made under the login policies: with `$on` true, it holds only
/// while the organization's policy is at version `$org` and the instance default's at
/// `$instance` (0: none stored). The policies' aggregate types are `$18` (an
/// organization's) and `$19` (the instance default's), which every statement using the
/// guard binds.
macro_rules! policy_guard {
    ($on:literal, $org:literal, $instance:literal) => {
        concat!(
            " AND (NOT ",
            $on,
            "::boolean OR ( \
             COALESCE((SELECT p.sequence FROM login_policies p WHERE p.instance_id = $1::text \
             AND p.aggregate_type = $18::text AND p.aggregate_id = $11::text), 0) = ",
            $org,
            "::bigint AND COALESCE((SELECT p.sequence FROM login_policies p WHERE p.instance_id = $1::text \
             AND p.aggregate_type = $19::text AND p.aggregate_id = $1::text), 0) = ",
            $instance,
            "::bigint))"
        )
    };
}

/// Removes authenticator `$12` and voids every code pending for it. With `$13` true, only
/// while the login policies decided on are at their versions: the organization's `$14`
/// and the instance default's `$15` (0: none stored). With a notice id `$16` (null: none),
/// writes the notice to number `$17` into the outbox, due at once, of kind `$20`.
pub const REMOVE_OTP_SMS: &str = decision!(
    guard: policy_guard!("$13", "$14", "$15"),
    move_user!(),
    "voided AS (DELETE FROM otp_sms_codes WHERE instance_id = $1::text AND otp_sms_id = $12::text \
     AND EXISTS (SELECT FROM moved))",
    "removed AS (DELETE FROM otp_sms_authenticators \
     WHERE instance_id = $1::text AND user_id = $2::text AND id = $12::text AND EXISTS (SELECT FROM moved))",
    "noticed AS (INSERT INTO notice_outbox (instance_id, id, kind, user_id, phone, created_at, available_at, attempts) \
     SELECT $1::text, $16::text, $20::text, $2::text, $17::text, $6::timestamptz, $6::timestamptz, 0 \
     FROM moved WHERE $16::text IS NOT NULL)"
);

/// Deletes the user; its authenticators and codes go with it (`ON DELETE CASCADE`). With
/// `$12` true, only while the login policies decided on are at their versions (`$13`,
/// `$14`, as for [`REMOVE_OTP_SMS`]). Writes the notices of `$15`, a JSON array of
/// `{"id", "phone"}`, into the outbox, due at once, of kind `$20`. Ends the sessions of
/// `$16`, a JSON array of `{"id", "sequence", "changed", "type", "payload", "actor", "at"}`
/// (each session's version read and its termination event, aggregate type `$17`), only
/// while they are every session the user holds, each at its version: the user's row takes
/// them with it, and each gets its event.
pub const DELETE_USER: &str = decision!(
    guard: concat!(
        policy_guard!("$12", "$13", "$14"),
        " AND (SELECT count(*) FROM sessions s WHERE s.instance_id = $1::text AND s.user_id = $2::text) \
         = jsonb_array_length($16::jsonb) AND (SELECT count(*) FROM sessions s, jsonb_array_elements($16::jsonb) \
         AS t(value) WHERE s.instance_id = $1::text AND s.user_id = $2::text AND s.id = t.value->>'id' \
         AND s.sequence = (t.value->>'sequence')::bigint AND s.changed_at = (t.value->>'changed')::timestamptz) \
         = jsonb_array_length($16::jsonb)"
    ),
    "DELETE FROM users",
    "noticed AS (INSERT INTO notice_outbox (instance_id, id, kind, user_id, phone, created_at, available_at, attempts) \
     SELECT $1::text, n.value->>'id', $20::text, $2::text, n.value->>'phone', $6::timestamptz, \
     $6::timestamptz, 0 FROM moved, jsonb_array_elements($15::jsonb) AS n(value))",
    "ended AS (INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, \
     created_at) SELECT $1::text, $17::text, t.value->>'id', (t.value->>'sequence')::bigint + 1, t.value->>'type', \
     t.value->'payload', t.value->>'actor', (t.value->>'at')::timestamptz \
     FROM moved, jsonb_array_elements($16::jsonb) AS t(value))"
);

/// Locks user `$2`'s row until the transaction ends (see `UserWriter::apply` of a deletion).
pub const LOCK_USER: &str = "SELECT 1 FROM users WHERE instance_id = $1::text AND id = $2::text FOR UPDATE";

/// The sessions user `$2` holds, with their versions.
pub const SESSIONS_OF: &str = "SELECT id, sequence, changed_at FROM sessions \
     WHERE instance_id = $1::text AND user_id = $2::text ORDER BY id";

/// Takes one try of a code (`$take`, an `UPDATE ... WHERE` of the code's row, to which
/// this adds the lock's condition and `RETURNING failed_attempts`) and charges it to the
/// budget of user `$5`: `$6` checks at most in a window (`$7`: a window that started then
/// or before has passed; `$8`: now). A window starts with the first check charged while
/// none is outstanding (the first failure, since a right check gives its unit back). One
/// statement, so concurrent checks are each charged:
///
/// - `locked`: the budget as the statement found it, when spent: no try is taken;
/// - `taken`: the code's try, only while the code is the one read and has tries left;
/// - `charged`: the budget's unit, only for a try taken and while the budget holds one;
///   the upsert waits for a concurrent charge of the same user and judges its result, so
///   no more than `$6` units are ever charged in one window.
///
/// Answers the tries taken (null: none), whether the unit was charged, the window's start
/// when the budget was found spent, and the window's start as found. A try taken without
/// a unit (a concurrent check spent the last) is left taken: the guess is not compared.
macro_rules! charged_try {
    ($take:literal) => {
        concat!(
            "WITH locked AS (SELECT window_start FROM code_check_failures WHERE instance_id = $1::text \
             AND user_id = $5::text AND failures >= $6::integer AND window_start > $7::timestamptz), \
             taken AS (",
            $take,
            " AND NOT EXISTS (SELECT FROM locked) RETURNING failed_attempts), \
             charged AS (INSERT INTO code_check_failures AS f (instance_id, user_id, window_start, failures) \
             SELECT $1::text, $5::text, $8::timestamptz, 1 FROM taken \
             ON CONFLICT (instance_id, user_id) DO UPDATE SET \
             failures = CASE WHEN f.window_start <= $7::timestamptz OR f.failures = 0 THEN 1 \
             ELSE f.failures + 1 END, \
             window_start = CASE WHEN f.window_start <= $7::timestamptz OR f.failures = 0 THEN $8::timestamptz \
             ELSE f.window_start END \
             WHERE f.window_start <= $7::timestamptz OR f.failures < $6::integer RETURNING f.window_start) \
             SELECT (SELECT failed_attempts FROM taken), EXISTS (SELECT FROM charged), \
             (SELECT window_start FROM locked), (SELECT window_start FROM code_check_failures \
             WHERE instance_id = $1::text AND user_id = $5::text)"
        )
    };
}

/// Takes one try of the code pending for authenticator `$2`, only while it is the one read
/// (hash `$3`) and fewer than `$4` tries were taken, charged to its user's budget (see
/// [`charged_try!`] for `$5` to `$8` and the answer). Concurrent tries are each counted
/// and never more than `$4`.
pub const TAKE_CODE_TRY: &str = charged_try!(
    "UPDATE otp_sms_codes SET failed_attempts = failed_attempts + 1 \
     WHERE instance_id = $1::text AND otp_sms_id = $2::text AND code_hash = $3::bytea \
     AND failed_attempts < $4::integer"
);

/// Gives back one unit of user `$2`'s budget of failed checks (a check of the right code,
/// charged at `$3`), unless a window that started after the charge holds the count now.
pub const FORGIVE_CODE_TRY: &str = "UPDATE code_check_failures SET failures = failures - 1 \
     WHERE instance_id = $1::text AND user_id = $2::text AND failures > 0 AND window_start <= $3::timestamptz";

/// The events of a user id over all its lives, in order. `$1` instance, `$2` aggregate
/// type, `$3` user.
pub const EVENTS_OF: &str = "SELECT sequence, event_type, creator, created_at, payload FROM events \
     WHERE instance_id = $1::text AND aggregate_type = $2::text AND aggregate_id = $3::text ORDER BY sequence";

/// One page of a user id's audit trail: the events of its current life (after the id's
/// last `$4` event, `user.removed`) numbered above `$5`, in order, at most `$6`. `$1`
/// instance, `$2` aggregate type, `$3` user. Both lookups walk the events' unique index on
/// (instance, aggregate type, aggregate id, sequence).
pub const EVENTS_PAGE: &str = "SELECT sequence, event_type, creator, created_at, payload FROM events \
     WHERE instance_id = $1::text AND aggregate_type = $2::text AND aggregate_id = $3::text \
     AND sequence > GREATEST($5::bigint, COALESCE((SELECT MAX(sequence) FROM events \
         WHERE instance_id = $1::text AND aggregate_type = $2::text AND aggregate_id = $3::text \
         AND event_type = $4::text), 0)) \
     ORDER BY sequence LIMIT $6::bigint";

/// A page of the instance's event feed. `$1` instance, `$2` and `$3` the cursor
/// (transaction, position), `$4` limit. Ordered by the writing transaction's id, then
/// position, and only events whose transaction is older than every transaction still
/// open: one still open may yet commit events, and they will sort after all of these.
pub const FEED_PAGE: &str = "SELECT tx::text::bigint AS tx, position, aggregate_type, aggregate_id, \
     sequence, event_type, creator, created_at, payload FROM events \
     WHERE instance_id = $1::text AND (tx, position) > ($2::bigint::text::xid8, $3::bigint) \
     AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY tx, position LIMIT $4::bigint";

/// A region's SMS breaker event ([`factors_adapters_sql::breaker_arguments`]), numbered after
/// the region's last. Two replicas that number one event alike: one writes nothing (the
/// events' unique key), and numbers again.
pub const RECORD_BREAKER: &str = "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, \
     event_type, payload, creator, created_at) SELECT $1::text, $2::text, $3::text, COALESCE(MAX(sequence), 0) + 1, \
     $4::text, $5::jsonb, $6::text, $7::timestamptz FROM events \
     WHERE instance_id = $1::text AND aggregate_type = $2::text AND aggregate_id = $3::text \
     ON CONFLICT DO NOTHING";

/// The last closing by hand of a region's breaker: `$1` instance, `$2`, `$3` the region's
/// aggregate, `$4` the closing's event type, `$5` the guard's own creator (not a hand).
pub const LAST_HAND_CLOSING: &str = "SELECT created_at, creator FROM events \
     WHERE instance_id = $1::text AND aggregate_type = $2::text AND aggregate_id = $3::text \
     AND event_type = $4::text AND creator <> $5::text ORDER BY sequence DESC LIMIT 1";

/// A session with its pending challenge. `$1` instance, `$2` session.
pub const LOAD_SESSION: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s LEFT JOIN session_challenges c ON c.instance_id = s.instance_id AND c.session_id = s.id \
     WHERE s.instance_id = $1::text AND s.id = $2::text"
);

/// A session decision's statement. Parameters of [`CREATE_SESSION`] and [`UPDATE_SESSION`]:
///
/// | | |
/// |---|---|
/// | `$1`, `$2` | instance, session |
/// | `$3`, `$4` | the version read: sequence, changed (null for a new session) |
/// | `$5`, `$6` | the next version: sequence, changed (also the events' time) |
/// | `$7` to `$15` | the state after: user, user's org, user checked at, OTP SMS authenticator, OTP SMS checked at, token hash, metadata, expiry, created |
/// | `$16` | the challenge: `keep`, `set` (to `$17` to `$21`) or `clear` |
/// | `$17` to `$21` | the challenge set: authenticator, code hash, expiry, failed tries, created |
/// | `$22` to `$25` | the user held: id, organization, sequence, changed (null: none) |
/// | `$26`, `$27`, `$28` | aggregate type (`session`), the events as a JSON array of `{type, payload}`, creator |
///
/// `held` locks the user row (`FOR SHARE`) at the version read, in the organization read,
/// so a removal or deletion of the user either committed before (and the write is refused)
/// or waits for this write to commit (and then voids what it wrote). Answers the number of sessions written.
macro_rules! session_decision {
    ($write:literal) => {
        concat!(
            "WITH held AS (SELECT 1 FROM users WHERE instance_id = $1::text AND id = $22::text \
             AND org_id = $23::text AND sequence = $24::bigint AND changed_at = $25::timestamptz FOR SHARE), \
             moved AS (",
            $write,
            " RETURNING 1), \
             cleared AS (DELETE FROM session_challenges WHERE instance_id = $1::text AND session_id = $2::text \
             AND $16::text = 'clear' AND EXISTS (SELECT FROM moved)), \
             challenged AS (INSERT INTO session_challenges (instance_id, session_id, otp_sms_id, code_hash, expires_at, \
             failed_attempts, created_at) SELECT $1::text, $2::text, $17::text, $18::bytea, $19::timestamptz, \
             $20::integer, $21::timestamptz FROM moved WHERE $16::text = 'set' \
             ON CONFLICT (instance_id, session_id) DO UPDATE SET otp_sms_id = EXCLUDED.otp_sms_id, \
             code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at, \
             failed_attempts = EXCLUDED.failed_attempts, created_at = EXCLUDED.created_at), \
             appended AS (INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, \
             creator, created_at) SELECT $1::text, $26::text, $2::text, COALESCE($3::bigint, 0) + e.n, \
             e.value->>'type', e.value->'payload', $28::text, $6::timestamptz \
             FROM moved, jsonb_array_elements($27::jsonb) WITH ORDINALITY AS e(value, n)) \
             SELECT count(*) FROM moved"
        )
    };
}

/// Creates a session (see [`session_decision!`] for the parameters); a taken id writes nothing.
pub const CREATE_SESSION: &str = session_decision!(
    "INSERT INTO sessions (instance_id, id, user_id, user_org_id, user_checked_at, otp_sms_id, otp_sms_checked_at, \
     token_hash, metadata, expires_at, created_at, changed_at, sequence) \
     SELECT $1::text, $2::text, $7::text, $8::text, $9::timestamptz, $10::text, $11::timestamptz, $12::bytea, \
     $13::jsonb, $14::timestamptz, $15::timestamptz, $6::timestamptz, $5::bigint \
     WHERE $3::bigint IS NULL AND $4::timestamptz IS NULL AND ($22::text IS NULL OR EXISTS (SELECT FROM held)) \
     ON CONFLICT (instance_id, id) DO NOTHING"
);

/// Writes a session's next state, only while it is at the version read.
pub const UPDATE_SESSION: &str = session_decision!(
    "UPDATE sessions SET user_id = $7::text, user_org_id = $8::text, user_checked_at = $9::timestamptz, \
     otp_sms_id = $10::text, otp_sms_checked_at = $11::timestamptz, token_hash = $12::bytea, metadata = $13::jsonb, \
     expires_at = $14::timestamptz, created_at = $15::timestamptz, changed_at = $6::timestamptz, sequence = $5::bigint \
     WHERE instance_id = $1::text AND id = $2::text AND sequence = $3::bigint AND changed_at = $4::timestamptz \
     AND ($22::text IS NULL OR EXISTS (SELECT FROM held))"
);

/// Ends a session: deletes it (its challenge goes with it) and appends its events, only
/// while it is at the version read. `$1` instance, `$2` session, `$3`, `$4` the version
/// read, `$5` the events' time, `$6` aggregate type, `$7` events, `$8` creator.
pub const DELETE_SESSION: &str = "WITH moved AS (DELETE FROM sessions WHERE instance_id = $1::text AND id = $2::text \
     AND sequence = $3::bigint AND changed_at = $4::timestamptz RETURNING 1), \
     appended AS (INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, \
     created_at) SELECT $1::text, $6::text, $2::text, $3::bigint + e.n, e.value->>'type', e.value->'payload', \
     $8::text, $5::timestamptz FROM moved, jsonb_array_elements($7::jsonb) WITH ORDINALITY AS e(value, n)) \
     SELECT count(*) FROM moved";

/// Takes one try of session `$2`'s challenge, only while it is the one read (hash `$3`)
/// and fewer than `$4` tries were taken, charged to the budget of the session's user (see
/// [`charged_try!`] for `$5` to `$8` and the answer).
pub const TAKE_SIGN_IN_TRY: &str = charged_try!(
    "UPDATE session_challenges SET failed_attempts = failed_attempts + 1 \
     WHERE instance_id = $1::text AND session_id = $2::text AND code_hash = $3::bytea \
     AND failed_attempts < $4::integer"
);

/// The columns of a login policy.
macro_rules! policy_columns {
    () => {
        "aggregate_type, aggregate_id, force_mfa, step_up_max_age_seconds, notify_on_removal, created_at, changed_at, \
         sequence"
    };
}

/// The instance default (`$1` instance, aggregate type `$3`) and organization `$2`'s policy
/// (aggregate type `$4`; null: none asked).
pub const LOAD_POLICIES: &str = concat!(
    "SELECT ",
    policy_columns!(),
    " FROM login_policies WHERE instance_id = $1::text AND ((aggregate_type = $3::text AND aggregate_id = $1::text) \
     OR (aggregate_type = $4::text AND aggregate_id = $2::text))"
);

/// Sets a scope's login policy and appends its event, only while it is at the version read.
/// `$1` instance, `$2`, `$3` aggregate type and id, `$4` force MFA, `$5` step-up age in
/// seconds, `$6` notify on removal, `$7` created, `$8` changed (also the event's time), `$9`
/// the next sequence (also the event's number), `$10`, `$11` the version read (null: none
/// stored), `$12`, `$13`, `$14` the event's type, payload and creator. Answers the number of
/// policies written: 1 applied, 0 refused.
pub const APPLY_POLICY: &str = "WITH moved AS ( \
         INSERT INTO login_policies (instance_id, aggregate_type, aggregate_id, force_mfa, step_up_max_age_seconds, \
                                     notify_on_removal, created_at, changed_at, sequence) \
         SELECT $1::text, $2::text, $3::text, $4::boolean, $5::bigint, $6::boolean, $7::timestamptz, $8::timestamptz, \
                $9::bigint \
         WHERE $10::bigint IS NULL \
         ON CONFLICT (instance_id, aggregate_type, aggregate_id) DO NOTHING RETURNING 1 \
     ), changed AS ( \
         UPDATE login_policies SET force_mfa = $4::boolean, step_up_max_age_seconds = $5::bigint, \
                notify_on_removal = $6::boolean, changed_at = $8::timestamptz, sequence = $9::bigint \
         WHERE instance_id = $1::text AND aggregate_type = $2::text AND aggregate_id = $3::text \
           AND sequence = $10::bigint AND changed_at = $11::timestamptz RETURNING 1 \
     ), written AS (SELECT 1 FROM moved UNION ALL SELECT 1 FROM changed), \
     appended AS ( \
         INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, \
                             created_at) \
         SELECT $1::text, $2::text, $3::text, $9::bigint, $12::text, $13::jsonb, $14::text, $8::timestamptz FROM written \
     ) SELECT count(*) FROM written";

/// Claims up to `$4` notices of instance `$1` due at `$2`, oldest first, until `$3`,
/// counting a try each; rows another worker holds locked are skipped, not waited for.
pub const CLAIM_NOTICES: &str = "UPDATE notice_outbox o SET available_at = $3::timestamptz, attempts = o.attempts + 1 \
     FROM (SELECT id FROM notice_outbox WHERE instance_id = $1::text AND available_at <= $2::timestamptz \
           ORDER BY available_at, id LIMIT $4::bigint FOR UPDATE SKIP LOCKED) due \
     WHERE o.instance_id = $1::text AND o.id = due.id \
     RETURNING o.id, o.kind, o.user_id, o.phone, o.created_at, o.attempts";

/// When the oldest notice of instance `$1` still in the outbox was written.
pub const OLDEST_NOTICE: &str = "SELECT min(created_at) FROM notice_outbox WHERE instance_id = $1::text";

/// Deletes notice `$2` of instance `$1`, unless claimed again since try `$3`.
pub const FINISH_NOTICE: &str =
    "DELETE FROM notice_outbox WHERE instance_id = $1::text AND id = $2::text AND attempts = $3::integer";

/// Makes notice `$2` of instance `$1` due at `$4`, unless claimed again since try `$3`.
pub const RETRY_NOTICE: &str = "UPDATE notice_outbox SET available_at = $4::timestamptz \
     WHERE instance_id = $1::text AND id = $2::text AND attempts = $3::integer";

/// The number of notices of instance `$1` in the outbox.
pub const PENDING_NOTICES: &str = "SELECT count(*) FROM notice_outbox WHERE instance_id = $1::text";
