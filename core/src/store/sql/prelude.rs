// Names every engine module uses; included first into each of them.
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::*;
use crate::model::{Invite, OrgMember, OrgView, Role, User};
use crate::store::{
    Engine, NewInvite, NewUser, OrgStore, ProfilePatch, RefreshOutcome, SessionStore, Store, StoreError,
    StoreResult, UserStore,
};

type Pool = sqlx::Pool<Db>;
type Tx<'a> = sqlx::Transaction<'a, Db>;
