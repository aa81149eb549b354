//! OTP SMS authenticators: listing, adding, verifying and removing, each write with its event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_application::Details;
use factors_application::ports::{
    AddOtpSmsError, NewOtpSms, OtpSmsReader, OtpSmsWriter, RemoveOtpSmsError, Unexpected, VerificationAttempt,
    VerifyOtpSmsError,
};
use factors_domain::{CodeHash, CodeRejection, OtpSmsAuthenticator, PendingCode, Removal, User, check_code};

use crate::rows::OtpSmsRow;
use crate::users::{append_event, bump_user};
use crate::{PgStore, unexpected};

#[async_trait]
impl OtpSmsReader for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id), err(level = "debug", Display))]
    async fn list_otp_sms(&self, user: &User) -> Result<Vec<OtpSmsAuthenticator>, Unexpected> {
        sqlx::query_as::<_, OtpSmsRow>(
            "SELECT id, user_id, phone, verified, created_at FROM otp_sms_authenticators \
             WHERE instance_id = $1 AND user_id = $2 ORDER BY created_at, id",
        )
        .bind(self.instance.as_str())
        .bind(user.id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing OTP SMS authenticators"))?
        .into_iter()
        .map(OtpSmsAuthenticator::try_from)
        .collect()
    }
}

/// The authenticator and its pending code, as a verification reads them.
#[derive(Debug, sqlx::FromRow)]
struct CodeRow {
    verified: bool,
    code_hash: Option<Vec<u8>>,
    expires_at: Option<DateTime<Utc>>,
    failed_attempts: Option<i32>,
}

impl CodeRow {
    fn pending(&self) -> Result<Option<PendingCode>, Unexpected> {
        let (Some(hash), Some(expires_at), Some(failed)) = (&self.code_hash, self.expires_at, self.failed_attempts)
        else {
            return Ok(None);
        };
        let hash: [u8; 32] = hash
            .as_slice()
            .try_into()
            .map_err(|_| Unexpected(anyhow::anyhow!("a stored code hash is not 32 bytes")))?;
        Ok(Some(PendingCode {
            hash: CodeHash::from_bytes(hash),
            expires_at,
            failed_attempts: u32::try_from(failed).unwrap_or(u32::MAX),
        }))
    }
}

#[async_trait]
impl OtpSmsWriter for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %new.authenticator.user, otp_sms_id = %new.authenticator.id), err(level = "debug", Display))]
    async fn add_otp_sms(&self, new: &NewOtpSms) -> Result<Details, AddOtpSmsError> {
        let authenticator = &new.authenticator;
        let mut tx = self.pool.begin().await.map_err(unexpected("starting a transaction"))?;
        let user = bump_user(&mut tx, &self.instance, &authenticator.user, new.event.at)
            .await?
            .ok_or(AddOtpSmsError::UserNotFound)?;
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO otp_sms_authenticators (instance_id, id, user_id, phone, verified, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (instance_id, user_id, phone) DO NOTHING RETURNING id",
        )
        .bind(self.instance.as_str())
        .bind(authenticator.id.as_str())
        .bind(authenticator.user.as_str())
        .bind(authenticator.phone.as_e164())
        .bind(authenticator.verified)
        .bind(authenticator.created)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("inserting an OTP SMS authenticator"))?;
        if inserted.is_none() {
            return Err(AddOtpSmsError::PhoneTaken);
        }
        if let Some(code) = &new.pending_code {
            sqlx::query(
                "INSERT INTO otp_sms_codes (instance_id, otp_sms_id, code_hash, expires_at, failed_attempts, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(self.instance.as_str())
            .bind(authenticator.id.as_str())
            .bind(code.hash.as_bytes().as_slice())
            .bind(code.expires_at)
            .bind(i32::try_from(code.failed_attempts).unwrap_or(i32::MAX))
            .bind(authenticator.created)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("storing a pending code"))?;
        }
        append_event(&mut tx, &self.instance, user.sequence, &new.event, user.changed_at).await?;
        tx.commit().await.map_err(unexpected("committing a new OTP SMS authenticator"))?;
        Ok(user.details()?)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %attempt.user, otp_sms_id = %attempt.authenticator), err(level = "debug", Display))]
    async fn verify_otp_sms(&self, attempt: &VerificationAttempt) -> Result<Details, VerifyOtpSmsError> {
        let mut tx = self.pool.begin().await.map_err(unexpected("starting a transaction"))?;
        // The user's row lock serialises this check with every other write to the user,
        // so two tries can never both read the same count of failed attempts.
        let locked: Option<String> =
            sqlx::query_scalar("SELECT id FROM users WHERE instance_id = $1 AND id = $2 FOR NO KEY UPDATE")
                .bind(self.instance.as_str())
                .bind(attempt.user.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unexpected("locking the user"))?;
        if locked.is_none() {
            return Err(VerifyOtpSmsError::NotFound);
        }
        let row = sqlx::query_as::<_, CodeRow>(
            "SELECT a.verified, c.code_hash, c.expires_at, c.failed_attempts \
             FROM otp_sms_authenticators a \
             LEFT JOIN otp_sms_codes c ON c.instance_id = a.instance_id AND c.otp_sms_id = a.id \
             WHERE a.instance_id = $1 AND a.user_id = $2 AND a.id = $3",
        )
        .bind(self.instance.as_str())
        .bind(attempt.user.as_str())
        .bind(attempt.authenticator.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("reading the pending code"))?
        .ok_or(VerifyOtpSmsError::NotFound)?;
        if row.verified {
            return Err(VerifyOtpSmsError::AlreadyVerified);
        }
        let pending = row.pending()?.ok_or(VerifyOtpSmsError::NoPendingCode)?;

        match check_code(&pending, &attempt.presented, attempt.now, &attempt.policy) {
            Ok(()) => {
                sqlx::query("DELETE FROM otp_sms_codes WHERE instance_id = $1 AND otp_sms_id = $2")
                    .bind(self.instance.as_str())
                    .bind(attempt.authenticator.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("using up the code"))?;
                sqlx::query("UPDATE otp_sms_authenticators SET verified = TRUE WHERE instance_id = $1 AND id = $2")
                    .bind(self.instance.as_str())
                    .bind(attempt.authenticator.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("marking the authenticator verified"))?;
                let user = bump_user(&mut tx, &self.instance, &attempt.user, attempt.now)
                    .await?
                    .ok_or(VerifyOtpSmsError::NotFound)?;
                append_event(&mut tx, &self.instance, user.sequence, &attempt.event, user.changed_at).await?;
                tx.commit().await.map_err(unexpected("committing a verification"))?;
                Ok(user.details()?)
            }
            Err(rejection @ CodeRejection::Wrong { .. }) => {
                // The failed try must count although the call answers an error: commit it.
                sqlx::query(
                    "UPDATE otp_sms_codes SET failed_attempts = failed_attempts + 1 \
                     WHERE instance_id = $1 AND otp_sms_id = $2",
                )
                .bind(self.instance.as_str())
                .bind(attempt.authenticator.as_str())
                .execute(&mut *tx)
                .await
                .map_err(unexpected("counting a failed try"))?;
                tx.commit().await.map_err(unexpected("committing a failed try"))?;
                Err(VerifyOtpSmsError::Rejected(rejection))
            }
            Err(rejection) => Err(VerifyOtpSmsError::Rejected(rejection)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %removal.user, otp_sms_id = %removal.authenticator), err(level = "debug", Display))]
    async fn remove_otp_sms(&self, removal: &Removal) -> Result<Details, RemoveOtpSmsError> {
        let mut tx = self.pool.begin().await.map_err(unexpected("starting a transaction"))?;
        let user = bump_user(&mut tx, &self.instance, &removal.user, removal.event.at)
            .await?
            .ok_or(RemoveOtpSmsError::NotFound)?;
        // Void every pending code first, explicitly; the cascade below would too.
        sqlx::query("DELETE FROM otp_sms_codes WHERE instance_id = $1 AND otp_sms_id = $2")
            .bind(self.instance.as_str())
            .bind(removal.authenticator.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unexpected("voiding pending codes"))?;
        let removed =
            sqlx::query("DELETE FROM otp_sms_authenticators WHERE instance_id = $1 AND user_id = $2 AND id = $3")
                .bind(self.instance.as_str())
                .bind(removal.user.as_str())
                .bind(removal.authenticator.as_str())
                .execute(&mut *tx)
                .await
                .map_err(unexpected("removing an OTP SMS authenticator"))?;
        if removed.rows_affected() == 0 {
            // Dropping the transaction rolls back the user's bump and the codes' deletion.
            return Err(RemoveOtpSmsError::NotFound);
        }
        append_event(&mut tx, &self.instance, user.sequence, &removal.event, user.changed_at).await?;
        tx.commit().await.map_err(unexpected("committing a removal"))?;
        Ok(user.details()?)
    }
}
