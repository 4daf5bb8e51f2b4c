//! How an approval can stop a request or a decision: held for a person, refused for a
//! precise reason, or more waiting than allowed. A leaf module, so that the approval room
//! and the error table can both name it.

/// Why a request, a retry or a decision met an approval it could not pass.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// An approval rule holds this request until a person approves it.
    #[error(
        "this request needs a person's approval ({reason}): approval {id} is pending; poll {poll_url} and retry the same request with the header `writ-approval: {id}` once it is approved, before {expires_at} (Unix seconds)"
    )]
    Required {
        /// The approval's id.
        id: String,
        /// Where its state can be read.
        poll_url: String,
        /// The rule's reason.
        reason: String,
        /// Unix seconds.
        expires_at: u64,
        /// What the person deciding is shown (no secret).
        summary: serde_json::Value,
    },
    /// The approval id is malformed, unknown, or of another tenant or agent.
    #[error("no approval {id} for you: check the id the refusal named")]
    Unknown {
        /// The id as given (only when it has an approval id's shape).
        id: String,
    },
    /// Nobody has decided yet.
    #[error("approval {id} is still pending: wait for a person to decide, then retry")]
    Pending {
        /// The approval.
        id: String,
    },
    /// A person said no.
    #[error("approval {id} was denied{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Denied {
        /// The approval.
        id: String,
        /// Why, as the person said it.
        reason: Option<String>,
    },
    /// Past its expiry, decided or not.
    #[error("approval {id} has expired: send the request again to ask for a new one")]
    Expired {
        /// The approval.
        id: String,
    },
    /// Used once already: an approval lets one request through.
    #[error(
        "approval {id} was already used: an approval lets exactly one request through; send the request again to ask for a new one"
    )]
    Used {
        /// The approval.
        id: String,
    },
    /// Its writ, agent or tenant was stopped.
    #[error("approval {id} was voided: its writ, agent or tenant was stopped")]
    Voided {
        /// The approval.
        id: String,
    },
    /// The request differs from the one approved.
    #[error(
        "approval {id} was given for another request: any change to the approved request voids the approval; send the exact request approved, or this one without the approval to ask for a new one"
    )]
    OtherRequest {
        /// The approval.
        id: String,
    },
    /// The request came with another writ than the one approved.
    #[error(
        "approval {id} was given for another writ: retry with the writ the approval was asked with"
    )]
    OtherWrit {
        /// The approval.
        id: String,
    },
    /// Not pending any more: cannot be decided.
    #[error("approval {id} is {status}: only a pending approval can be decided")]
    NotPending {
        /// The approval.
        id: String,
        /// Where it stands.
        status: &'static str,
    },
    /// The agent or its tenant has as many approvals waiting as allowed.
    #[error("{0}")]
    TooManyPending(String),
}

impl ApprovalError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApprovalError::Required { .. } => "approval_required",
            ApprovalError::Unknown { .. } => "approval_not_found",
            ApprovalError::Pending { .. } => "approval_pending",
            ApprovalError::Denied { .. } => "approval_denied",
            ApprovalError::Expired { .. } => "approval_expired",
            ApprovalError::Used { .. } => "approval_used",
            ApprovalError::Voided { .. } => "approval_voided",
            ApprovalError::OtherRequest { .. } => "approval_request_mismatch",
            ApprovalError::OtherWrit { .. } => "approval_writ_mismatch",
            ApprovalError::NotPending { .. } => "approval_not_pending",
            ApprovalError::TooManyPending(_) => "too_many_pending_approvals",
        }
    }
}
