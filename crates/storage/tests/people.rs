//! Users, teams and sessions of the team inbox, run against SQLite always and PostgreSQL when
//! `WAGATE_TEST_DATABASE_URL` is set: every implementation of `People` must pass all of it.

use std::sync::Arc;

use wagate_domain::id::{TeamId, UserId};
use wagate_domain::time::Timestamp;
use wagate_storage::testing::TestDatabase;
use wagate_storage::*;

struct Fixture {
    store: Arc<dyn Store>,
    _db: TestDatabase,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let db = TestDatabase::new(backend).await?;
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.expect("connect and migrate");
    assert_eq!(store.backend(), backend);
    Some(Fixture { store, _db: db })
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn user(email: &str, role: UserRole, teams: &[&Team]) -> User {
    User {
        id: UserId::generate(),
        email: email.into(),
        name: format!("Name of {email}"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role,
        team_ids: teams.iter().map(|t| t.id.clone()).collect(),
        created_at: t(0),
        updated_at: t(0),
    }
}

async fn inserted_user(store: &dyn Store, email: &str, role: UserRole, teams: &[&Team]) -> User {
    let u = user(email, role, teams);
    store.insert_user(&u).await.unwrap();
    u
}

fn team(name: &str) -> Team {
    Team { id: TeamId::generate(), name: name.into(), created_at: t(0), updated_at: t(0) }
}

async fn inserted_team(store: &dyn Store, name: &str) -> Team {
    let team = team(name);
    store.insert_team(&team).await.unwrap();
    team
}

fn session(token_hash: &str, user: &User, expires_at: Timestamp) -> Session {
    Session {
        token_hash: token_hash.into(),
        user_id: user.id.clone(),
        csrf_token: format!("csrf-{token_hash}"),
        created_at: t(0),
        last_seen_at: t(0),
        expires_at,
    }
}

fn sorted(mut ids: Vec<TeamId>) -> Vec<TeamId> {
    ids.sort();
    ids
}

fn conflict<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(StorageError::Conflict(message)) => message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn users_are_read_by_id_and_email(store: &dyn Store) {
    let (sales, support) = (inserted_team(store, "Sales").await, inserted_team(store, "Support").await);
    let ana = inserted_user(store, "ana@example.com", UserRole::Admin, &[&support, &sales]).await;
    let bob = inserted_user(store, "bob@example.com", UserRole::Agent, &[]).await;

    let got = store.get_user(&ana.id).await.unwrap().unwrap();
    assert_eq!(got, User { team_ids: sorted(ana.team_ids.clone()), ..ana.clone() });
    assert_eq!(store.get_user(&bob.id).await.unwrap(), Some(bob.clone()));
    assert_eq!(store.get_user(&UserId::generate()).await.unwrap(), None);

    assert_eq!(store.find_user_by_email("bob@example.com").await.unwrap(), Some(bob.clone()));
    // The service folds the email; storage compares it as given.
    assert_eq!(store.find_user_by_email("Bob@Example.com").await.unwrap(), None);
    assert_eq!(store.find_user_by_email("nobody@example.com").await.unwrap(), None);
    let mixed = inserted_user(store, "Carla@Example.com", UserRole::Agent, &[]).await;
    assert_eq!(store.find_user_by_email("Carla@Example.com").await.unwrap(), Some(mixed));

    // A team listed twice is one membership.
    let twice = inserted_user(store, "dan@example.com", UserRole::Agent, &[&sales, &sales]).await;
    assert_eq!(store.get_user(&twice.id).await.unwrap().unwrap().team_ids, vec![sales.id.clone()]);
}

async fn a_taken_email_or_an_unknown_team_is_a_conflict(store: &dyn Store) {
    let sales = inserted_team(store, "Sales").await;
    let ana = inserted_user(store, "ana@example.com", UserRole::Admin, &[&sales]).await;

    let again = user("ana@example.com", UserRole::Agent, &[]);
    assert!(conflict(store.insert_user(&again).await).contains("ana@example.com"));
    assert_eq!(store.get_user(&again.id).await.unwrap(), None);

    let ghost = team("Ghost");
    let lost = user("lost@example.com", UserRole::Agent, &[&sales, &ghost]);
    assert!(conflict(store.insert_user(&lost).await).contains(ghost.id.as_str()));
    // Nothing of it was written.
    assert_eq!(store.get_user(&lost.id).await.unwrap(), None);
    assert_eq!(store.find_user_by_email("lost@example.com").await.unwrap(), None);

    // The same id again.
    let same = User { email: "other@example.com".into(), ..ana.clone() };
    conflict(store.insert_user(&same).await);
    assert_eq!(store.get_user(&ana.id).await.unwrap(), Some(ana));
    assert_eq!(store.count_admins().await.unwrap(), 1);
}

async fn users_are_updated_with_their_memberships(store: &dyn Store) {
    let (sales, support, billing) = (
        inserted_team(store, "Sales").await,
        inserted_team(store, "Support").await,
        inserted_team(store, "Billing").await,
    );
    let ana = inserted_user(store, "ana@example.com", UserRole::Agent, &[&sales, &support]).await;
    let bob = inserted_user(store, "bob@example.com", UserRole::Agent, &[&sales]).await;

    let changed = User {
        email: "ana.new@example.com".into(),
        name: "Ana Nova".into(),
        password_hash: "$argon2id$new".into(),
        role: UserRole::Admin,
        team_ids: vec![billing.id.clone(), support.id.clone()],
        updated_at: t(5),
        ..ana.clone()
    };
    assert!(store.update_user(&changed).await.unwrap());
    let got = store.get_user(&ana.id).await.unwrap().unwrap();
    assert_eq!(got, User { team_ids: sorted(changed.team_ids.clone()), ..changed.clone() });
    assert_eq!(store.find_user_by_email("ana@example.com").await.unwrap(), None);
    assert_eq!(store.count_admins().await.unwrap(), 1);
    // Bob's memberships are his own.
    assert_eq!(store.get_user(&bob.id).await.unwrap().unwrap().team_ids, vec![sales.id.clone()]);

    // No teams at all.
    let alone = User { team_ids: vec![], ..changed.clone() };
    assert!(store.update_user(&alone).await.unwrap());
    assert_eq!(store.get_user(&ana.id).await.unwrap(), Some(alone.clone()));

    // Another's email: refused, nothing changed.
    let taken = User { email: "bob@example.com".into(), team_ids: vec![sales.id.clone()], ..alone.clone() };
    assert!(conflict(store.update_user(&taken).await).contains("bob@example.com"));
    assert_eq!(store.get_user(&ana.id).await.unwrap(), Some(alone.clone()));

    // An unknown team: refused, the memberships as they were.
    let ghost = User { team_ids: vec![sales.id.clone(), TeamId::generate()], name: "Ghost".into(), ..alone.clone() };
    conflict(store.update_user(&ghost).await);
    assert_eq!(store.get_user(&ana.id).await.unwrap(), Some(alone.clone()));

    // An unknown user.
    assert!(!store.update_user(&user("new@example.com", UserRole::Agent, &[])).await.unwrap());
    assert_eq!(store.find_user_by_email("new@example.com").await.unwrap(), None);
}

async fn users_are_listed_by_id(store: &dyn Store) {
    let (sales, support) = (inserted_team(store, "Sales").await, inserted_team(store, "Support").await);
    let mut all = Vec::new();
    for i in 0..7 {
        let teams: &[&Team] = match i % 3 {
            0 => &[&sales],
            1 => &[&sales, &support],
            _ => &[],
        };
        let mut u = inserted_user(store, &format!("user{i}@example.com"), UserRole::Agent, teams).await;
        u.team_ids = sorted(u.team_ids);
        all.push(u);
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));

    assert_eq!(store.list_users(&UserFilter::default(), 100).await.unwrap(), all);
    // Page by page.
    let mut pages = Vec::new();
    let mut filter = UserFilter::default();
    loop {
        let page = store.list_users(&filter, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        filter.after = Some(last.id.clone());
        pages.extend(page);
    }
    assert_eq!(pages, all);

    let in_sales: Vec<User> = all.iter().filter(|u| u.team_ids.contains(&sales.id)).cloned().collect();
    let filter = UserFilter { team_id: Some(sales.id.clone()), after: None };
    assert_eq!(store.list_users(&filter, 100).await.unwrap(), in_sales);
    // Members keep every team of theirs in the list.
    assert!(in_sales.iter().any(|u| u.team_ids.len() == 2));
    let filter = UserFilter { team_id: Some(sales.id.clone()), after: Some(in_sales[1].id.clone()) };
    assert_eq!(store.list_users(&filter, 2).await.unwrap(), in_sales[2..4]);
    let filter = UserFilter { team_id: Some(TeamId::generate()), after: None };
    assert_eq!(store.list_users(&filter, 100).await.unwrap(), []);
    assert_eq!(store.list_users(&UserFilter::default(), 0).await.unwrap(), []);
}

async fn admins_are_counted(store: &dyn Store) {
    assert_eq!(store.count_admins().await.unwrap(), 0);
    let ana = inserted_user(store, "ana@example.com", UserRole::Admin, &[]).await;
    inserted_user(store, "bob@example.com", UserRole::Agent, &[]).await;
    let carla = inserted_user(store, "carla@example.com", UserRole::Admin, &[]).await;
    assert_eq!(store.count_admins().await.unwrap(), 2);
    assert!(store.update_user(&User { role: UserRole::Agent, ..carla }).await.unwrap());
    assert_eq!(store.count_admins().await.unwrap(), 1);
    assert!(store.delete_user(&ana.id).await.unwrap());
    assert_eq!(store.count_admins().await.unwrap(), 0);
}

async fn deleting_a_user_ends_their_memberships_and_sessions(store: &dyn Store) {
    let sales = inserted_team(store, "Sales").await;
    let ana = inserted_user(store, "ana@example.com", UserRole::Agent, &[&sales]).await;
    let bob = inserted_user(store, "bob@example.com", UserRole::Agent, &[&sales]).await;
    store.insert_session(&session("a1", &ana, t(1_000))).await.unwrap();
    store.insert_session(&session("b1", &bob, t(1_000))).await.unwrap();

    assert!(store.delete_user(&ana.id).await.unwrap());
    assert!(!store.delete_user(&ana.id).await.unwrap());
    assert_eq!(store.get_user(&ana.id).await.unwrap(), None);
    assert_eq!(store.get_session("a1", t(0)).await.unwrap(), None);
    assert!(store.get_session("b1", t(0)).await.unwrap().is_some());
    let filter = UserFilter { team_id: Some(sales.id.clone()), after: None };
    assert_eq!(store.list_users(&filter, 10).await.unwrap(), [bob]);
    assert_eq!(store.get_team(&sales.id).await.unwrap(), Some(sales));
    // The email is free again.
    inserted_user(store, "ana@example.com", UserRole::Agent, &[]).await;
}

async fn teams_are_unique_by_name_regardless_of_case(store: &dyn Store) {
    let sales = inserted_team(store, "Sales").await;
    assert_eq!(store.get_team(&sales.id).await.unwrap(), Some(sales.clone()));
    assert_eq!(store.get_team(&TeamId::generate()).await.unwrap(), None);

    let shouting = team("SALES");
    assert!(conflict(store.insert_team(&shouting).await).contains("SALES"));
    assert_eq!(store.get_team(&shouting.id).await.unwrap(), None);
    conflict(store.insert_team(&Team { name: "Other".into(), ..sales.clone() }).await);

    let support = inserted_team(store, "Support").await;
    let renamed = Team { name: "Customer Care".into(), updated_at: t(9), ..support.clone() };
    assert!(store.update_team(&renamed).await.unwrap());
    assert_eq!(store.get_team(&support.id).await.unwrap(), Some(renamed.clone()));
    // Its own name in another case is no conflict; another team's is.
    let recased = Team { name: "customer care".into(), ..renamed.clone() };
    assert!(store.update_team(&recased).await.unwrap());
    conflict(store.update_team(&Team { name: "sAlEs".into(), ..recased.clone() }).await);
    assert_eq!(store.get_team(&support.id).await.unwrap(), Some(recased.clone()));
    assert!(!store.update_team(&team("Nobody")).await.unwrap());
}

async fn teams_are_listed_by_name(store: &dyn Store) {
    assert_eq!(store.list_teams().await.unwrap(), []);
    let support = inserted_team(store, "Support").await;
    let billing = inserted_team(store, "billing").await;
    let sales = inserted_team(store, "Sales").await;
    assert_eq!(store.list_teams().await.unwrap(), [billing, sales, support]);
}

async fn deleting_a_team_keeps_its_users(store: &dyn Store) {
    let (sales, support) = (inserted_team(store, "Sales").await, inserted_team(store, "Support").await);
    let ana = inserted_user(store, "ana@example.com", UserRole::Agent, &[&sales, &support]).await;
    assert!(store.delete_team(&sales.id).await.unwrap());
    assert!(!store.delete_team(&sales.id).await.unwrap());
    assert_eq!(store.get_team(&sales.id).await.unwrap(), None);
    let got = store.get_user(&ana.id).await.unwrap().unwrap();
    assert_eq!(got, User { team_ids: vec![support.id.clone()], ..ana.clone() });
    let filter = UserFilter { team_id: Some(sales.id.clone()), after: None };
    assert_eq!(store.list_users(&filter, 10).await.unwrap(), []);
    // The name is free again.
    inserted_team(store, "sales").await;
}

async fn sessions_live_until_they_expire(store: &dyn Store) {
    let ana = inserted_user(store, "ana@example.com", UserRole::Agent, &[]).await;
    let bob = inserted_user(store, "bob@example.com", UserRole::Agent, &[]).await;
    let s = session("hash-1", &ana, t(100));
    store.insert_session(&s).await.unwrap();
    conflict(store.insert_session(&s).await);
    conflict(store.insert_session(&session("hash-x", &user("x@example.com", UserRole::Agent, &[]), t(100))).await);

    assert_eq!(store.get_session("hash-1", t(50)).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_session("hash-1", t(100)).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_session("hash-1", t(101)).await.unwrap(), None);
    assert_eq!(store.get_session("unknown", t(0)).await.unwrap(), None);

    store.touch_session("hash-1", t(90), t(500)).await.unwrap();
    let touched = Session { last_seen_at: t(90), expires_at: t(500), ..s.clone() };
    assert_eq!(store.get_session("hash-1", t(400)).await.unwrap(), Some(touched));
    store.touch_session("unknown", t(90), t(500)).await.unwrap();

    store.delete_session("hash-1").await.unwrap();
    assert_eq!(store.get_session("hash-1", t(0)).await.unwrap(), None);
    store.delete_session("hash-1").await.unwrap();

    for i in 0..3 {
        store.insert_session(&session(&format!("ana-{i}"), &ana, t(1_000))).await.unwrap();
    }
    store.insert_session(&session("bob-0", &bob, t(1_000))).await.unwrap();
    assert_eq!(store.delete_user_sessions(&ana.id).await.unwrap(), 3);
    assert_eq!(store.delete_user_sessions(&ana.id).await.unwrap(), 0);
    assert!(store.get_session("ana-0", t(0)).await.unwrap().is_none());
    assert!(store.get_session("bob-0", t(0)).await.unwrap().is_some());
}

async fn expired_sessions_are_removed_a_batch_at_a_time(store: &dyn Store) {
    let ana = inserted_user(store, "ana@example.com", UserRole::Agent, &[]).await;
    for i in 0..5 {
        store.insert_session(&session(&format!("old-{i}"), &ana, t(i))).await.unwrap();
    }
    store.insert_session(&session("live", &ana, t(100))).await.unwrap();
    store.insert_session(&session("edge", &ana, t(50))).await.unwrap();
    assert_eq!(store.delete_expired_sessions(t(50), 3).await.unwrap(), 3);
    assert_eq!(store.delete_expired_sessions(t(50), 3).await.unwrap(), 2);
    assert_eq!(store.delete_expired_sessions(t(50), 3).await.unwrap(), 0);
    // Expiring at `now` is not expired before it.
    assert!(store.get_session("edge", t(50)).await.unwrap().is_some());
    assert!(store.get_session("live", t(50)).await.unwrap().is_some());
    assert_eq!(store.delete_expired_sessions(t(1_000), 0).await.unwrap(), 0);
    assert_eq!(store.delete_expired_sessions(t(1_000), 10).await.unwrap(), 2);
}

async fn odd_text_round_trips(store: &dyn Store) {
    let odd = "\u{202E}ﾃｨｰﾑ \u{1F44B}\u{1F3FD} فريق 春 'quotes' \"double\" \\back; DROP TABLE teams; --";
    let t1 = inserted_team(store, odd).await;
    let t2 = inserted_team(store, "\u{200D}\u{1F468}\u{200D}\u{1F469}\u{FEFF}e\u{0301}").await;
    assert_eq!(store.get_team(&t1.id).await.unwrap(), Some(t1.clone()));
    assert_eq!(store.get_team(&t2.id).await.unwrap(), Some(t2.clone()));
    let mut teams = store.list_teams().await.unwrap();
    teams.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![t1.clone(), t2.clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(teams, expected);

    let long = "ß\u{200F}ﷺ".repeat(2_000);
    let mut u = user("\u{1F600}@例え.jp", UserRole::Agent, &[&t1, &t2]);
    u.name = format!("\u{2066}Zoë\u{2069} O'Brien-Łukasz {long}");
    u.password_hash = "$argon2id$v=19$\u{10FFFF}".into();
    store.insert_user(&u).await.unwrap();
    let got = store.get_user(&u.id).await.unwrap().unwrap();
    assert_eq!(got, User { team_ids: sorted(u.team_ids.clone()), ..u.clone() });
    assert_eq!(store.find_user_by_email("\u{1F600}@例え.jp").await.unwrap(), Some(got));

    let s = Session { csrf_token: "\u{1F511}\u{0301}".into(), ..session("\u{00E9}\u{1F510}", &u, t(10)) };
    store.insert_session(&s).await.unwrap();
    assert_eq!(store.get_session("\u{00E9}\u{1F510}", t(0)).await.unwrap(), Some(s));

    // Text the databases may refuse (PostgreSQL takes no NUL in text): an error or stored.
    let nul = user("a\u{0}b@example.com", UserRole::Agent, &[]);
    if store.insert_user(&nul).await.is_ok() {
        assert_eq!(store.get_user(&nul.id).await.unwrap().unwrap().email, "a\u{0}b@example.com");
    } else {
        assert_eq!(store.backend(), Backend::Postgres);
    }
    let _ = store.find_user_by_email("\u{0}").await;
    let _ = store.get_session("\u{0}", t(0)).await;
    // And the store goes on.
    inserted_team(store, "After").await;
    assert_eq!(store.list_teams().await.unwrap().len(), 3);
}

macro_rules! suite {
    ($module:ident, $b:expr) => {
        mod $module {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        if let Some(f) = fixture($b).await {
                            super::$name(f.store.as_ref()).await;
                        }
                    }
                };
            }

            case!(users_are_read_by_id_and_email);
            case!(a_taken_email_or_an_unknown_team_is_a_conflict);
            case!(users_are_updated_with_their_memberships);
            case!(users_are_listed_by_id);
            case!(admins_are_counted);
            case!(deleting_a_user_ends_their_memberships_and_sessions);
            case!(teams_are_unique_by_name_regardless_of_case);
            case!(teams_are_listed_by_name);
            case!(deleting_a_team_keeps_its_users);
            case!(sessions_live_until_they_expire);
            case!(expired_sessions_are_removed_a_batch_at_a_time);
            case!(odd_text_round_trips);
        }
    };
}

suite!(sqlite, Backend::Sqlite);
suite!(postgres, Backend::Postgres);
