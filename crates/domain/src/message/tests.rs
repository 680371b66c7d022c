//! The model against Meta's documented bodies, invalid bodies, and generated ones.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const EXAMPLES: &str = include_str!("../../../../testdata/meta-send-examples.json");
const INVALID: &str = include_str!("../../../../testdata/invalid-sends.json");

fn examples() -> Vec<(String, Value)> {
    let all: Vec<Value> = serde_json::from_str(EXAMPLES).unwrap();
    all.into_iter().map(|e| (e["name"].as_str().unwrap().to_owned(), e["body"].clone())).collect()
}

#[test]
fn every_documented_body_parses_validates_and_reserialises_exactly() {
    let examples = examples();
    assert!(examples.len() >= 40);
    for (name, body) in examples {
        let outbound = match GraphRequest::parse(&body) {
            Ok(GraphRequest::Send(o)) => o,
            Ok(other) => panic!("{name}: parsed as {other:?}"),
            Err(e) => panic!("{name}: {e}"),
        };
        let kind = outbound.content.kind();
        assert_eq!(graph_body(outbound.recipient.as_str(), kind, &outbound.fields()), body, "{name}");
        let object = &body[kind];
        assert_eq!(&Content::from_object(kind, object).unwrap().object(), object, "{name}");
    }
}

#[test]
fn every_documented_body_is_also_a_valid_native_send() {
    for (name, body) in examples() {
        let mut native = body.as_object().unwrap().clone();
        native.remove("messaging_product");
        if let Some(context) = native.remove("context") {
            native.insert("reply_to".into(), context["message_id"].clone());
        }
        let req: SendRequest = from_value("", &Value::Object(native)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let valid = req.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let kind = valid.outbound.content.kind();
        assert_eq!(&valid.outbound.fields()[kind], &body[kind], "{name}");
    }
}

#[test]
fn invalid_bodies_name_their_path_and_rule() {
    let cases: Vec<Value> = serde_json::from_str(INVALID).unwrap();
    assert!(cases.len() >= 40);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let result = from_value::<SendRequest>("", &case["body"]).and_then(SendRequest::validate);
        let e = result.err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(
            (e.path.as_str(), e.rule),
            (case["path"].as_str().unwrap(), case["rule"].as_str().unwrap()),
            "{name}: {e}"
        );
        assert!(e.message.starts_with(&e.path), "{name}: the message names the field: {e}");
    }
}

#[test]
fn read_receipts_and_typing_indicators() {
    let read = json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"});
    let mut typing = read.clone();
    typing["typing_indicator"] = json!({"type": "text"});
    for body in [read, typing.clone()] {
        match GraphRequest::parse(&body).unwrap() {
            GraphRequest::Read(r) => assert_eq!(serde_json::to_value(&r).unwrap(), body),
            other => panic!("{other:?}"),
        }
    }
    typing["typing_indicator"] = json!({"type": "voice"});
    assert_eq!(GraphRequest::parse(&typing).unwrap_err().path, "typing_indicator.type");
    assert_eq!(
        serde_json::to_value(ReadReceipt::new("wamid.X", true)).unwrap(),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X", "typing_indicator": {"type": "text"}})
    );
}

#[test]
fn graph_bodies_follow_metas_defaults_and_codes() {
    let e = GraphRequest::parse(&json!({"to": "16505551234", "text": {"body": "hi"}})).unwrap_err();
    assert_eq!((e.path.as_str(), e.rule), ("messaging_product", "required"));
    // No `type` means text, as at Meta; no `+` is Meta's business (it adds the country code).
    let ok =
        GraphRequest::parse(&json!({"messaging_product": "whatsapp", "to": "(650) 555-1234", "text": {"body": "hi"}}));
    assert!(matches!(ok, Ok(GraphRequest::Send(o)) if o.content.kind() == "text"));
    let e =
        GraphRequest::parse(&json!({"messaging_product": "whatsapp", "to": "12", "text": {"body": "hi"}})).unwrap_err();
    assert_eq!(e.path, "to");
}

#[test]
fn business_scoped_user_ids_have_metas_shapes_only() {
    for user in [
        "US.13491208655302741918",
        "US.ENT.11815799212886844830",
        "BR.abc123DEF",
        "user.9373795779eb6441c8adb2eaee5b848e7dd174ddd302d7db62142f4722d574b6",
    ] {
        assert_eq!(Recipient::parse_graph(user, None), Ok(Recipient::User(user.into())), "{user}");
        assert_eq!(Recipient::parse_native(user, None), Ok(Recipient::User(user.into())), "{user}");
    }
    let longest = format!("US.{}", "9".repeat(128));
    assert!(Recipient::parse_native(&longest, None).is_ok());
    for not_a_user in [
        "1555CALLNOW",
        ".abc",
        "US 123",
        "undefined",
        "null",
        "x",
        "msg_01",
        "wamid.abc",
        "us.123",
        "ZZ.123",
        "US.",
        "US.12-34",
        "US.ENT.",
        "user.ENT.12",
        "US.1.2",
        &format!("US.{}", "9".repeat(129)),
    ] {
        for e in [Recipient::parse_graph(not_a_user, None), Recipient::parse_native(not_a_user, None)] {
            assert_eq!(e.unwrap_err().path, "to", "{not_a_user}");
        }
    }
}

// Round trips of generated values.

fn s(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 _.é😀-]{{1,{max}}}")).unwrap()
}

fn opt<T: std::fmt::Debug + Clone>(st: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(st)
}

fn media_source() -> impl Strategy<Value = (Option<String>, Option<String>)> {
    prop_oneof![
        "[0-9]{5,17}".prop_map(|id| (Some(id), None)),
        "[a-z]{1,12}".prop_map(|p| (None, Some(format!("https://example.com/{p}.png")))),
    ]
}

fn num_or_str() -> impl Strategy<Value = NumOrStr> {
    prop_oneof![
        (-90.0f64..90.0).prop_map(|v| NumOrStr::Num(serde_json::Number::from_f64(v).unwrap())),
        (-90.0f64..90.0).prop_map(|v| NumOrStr::Str(v.to_string())),
    ]
}

fn text_object() -> impl Strategy<Value = interactive::TextObject> {
    s(60).prop_map(|text| interactive::TextObject { text })
}

fn header() -> impl Strategy<Value = interactive::Header> {
    use interactive::*;
    prop_oneof![
        (s(60), opt(s(60))).prop_map(|(text, sub_text)| Header::Text(TextHeader { text, sub_text })),
        media_source()
            .prop_map(|(id, link)| Header::Image(ImageHeader { image: media::MediaRef { id, link, media_id: None } })),
        (media_source(), opt(s(20))).prop_map(|((id, link), filename)| Header::Document(DocumentHeader {
            document: media::DocumentRef { id, link, filename, media_id: None }
        })),
    ]
}

fn interactive_content() -> impl Strategy<Value = Interactive> {
    use interactive::*;
    // Ids and titles are unique within a message: the index makes them so.
    let buttons = proptest::collection::vec(("[a-z0-9_-]{1,200}", s(18)), 1..=3).prop_map(|bs| ButtonAction {
        buttons: bs
            .into_iter()
            .enumerate()
            .map(|(i, (id, title))| ReplyButton {
                kind: "reply".into(),
                reply: Reply { id: format!("{id}{i}"), title: format!("{i}{title}") },
            })
            .collect(),
    });
    let rows = proptest::collection::vec(("[a-z0-9_-]{1,190}", s(22), opt(s(72))), 1..=4).prop_map(|rs| {
        rs.into_iter()
            .enumerate()
            .map(|(i, (id, title, description))| Row { id: format!("{id}{i}"), title, description })
            .collect::<Vec<_>>()
    });
    prop_oneof![
        (opt(header()), text_object(), opt(text_object()), buttons).prop_map(|(header, body, footer, action)| {
            Interactive::Button(ButtonMessage { header, body, footer, action })
        }),
        (text_object(), s(20), opt(s(24)), rows).prop_map(|(body, button, title, rows)| Interactive::List(
            ListMessage {
                header: None,
                body,
                footer: None,
                action: ListAction { button, sections: vec![ListSection { title, rows }] },
            }
        )),
        (text_object(), s(20), "[a-z]{1,10}").prop_map(|(body, display_text, path)| Interactive::CtaUrl(
            CtaUrlMessage {
                header: None,
                body,
                footer: None,
                action: CtaUrlAction {
                    name: "cta_url".into(),
                    parameters: CtaUrlParameters { display_text, url: format!("https://example.com/{path}") },
                },
            }
        )),
        (
            text_object(),
            s(30),
            opt("[0-9]{8}"),
            opt(prop_oneof![Just("draft".to_owned()), Just("published".to_owned())])
        )
            .prop_map(|(body, flow_cta, flow_id, mode)| Interactive::Flow(FlowMessage {
                header: None,
                body,
                footer: None,
                action: FlowAction {
                    name: "flow".into(),
                    parameters: FlowParameters {
                        flow_message_version: "3".into(),
                        flow_name: flow_id.is_none().then(|| "booking".into()),
                        flow_id,
                        flow_cta,
                        mode,
                        flow_token: None,
                        flow_action: None,
                        flow_action_payload: None,
                    },
                },
            })),
        (opt(text_object()), "[0-9]{6}", "[a-z0-9]{6}").prop_map(|(body, catalog_id, product_retailer_id)| {
            Interactive::Product(ProductMessage {
                body,
                footer: None,
                action: ProductAction { catalog_id, product_retailer_id },
            })
        }),
    ]
}

fn template_content() -> impl Strategy<Value = Template> {
    use template::*;
    let param = prop_oneof![
        s(100).prop_map(|text| Parameter::Text(TextParam { text, parameter_name: None })),
        (s(10), any::<i32>()).prop_map(|(fallback_value, a)| Parameter::Currency(CurrencyParam {
            currency: Currency { fallback_value, code: "EUR".into(), amount_1000: i64::from(a) },
            parameter_name: None,
        })),
        (s(20), opt(1i64..12)).prop_map(|(fallback_value, month)| Parameter::DateTime(DateTimeParam {
            date_time: DateTime {
                fallback_value,
                calendar: None,
                year: None,
                month,
                day_of_month: None,
                day_of_week: None,
                hour: None,
                minute: None,
            },
            parameter_name: None,
        })),
    ];
    // Each button's index becomes its position below, as a number or a string.
    let button = (prop_oneof![Just("quick_reply"), Just("QUICK_REPLY")], any::<bool>(), s(30)).prop_map(
        |(sub_type, as_string, payload)| ButtonComponent {
            sub_type: sub_type.into(),
            index: if as_string { NumOrStr::Str(String::new()) } else { NumOrStr::Num(0.into()) },
            parameters: Some(vec![Parameter::Payload(PayloadParam { payload })]),
        },
    );
    let components = (proptest::collection::vec(param, 1..4), any::<bool>(), proptest::collection::vec(button, 0..3))
        .prop_map(|(mut ps, named, bs)| {
            // A template is either named or positional throughout.
            if named {
                for (i, p) in ps.iter_mut().enumerate() {
                    let name = Some(format!("value_{i}"));
                    match p {
                        Parameter::Text(t) => t.parameter_name = name,
                        Parameter::Currency(c) => c.parameter_name = name,
                        Parameter::DateTime(d) => d.parameter_name = name,
                        _ => {}
                    }
                }
            }
            let mut c = vec![Component::Body(Parameters { parameters: ps })];
            c.extend(bs.into_iter().enumerate().map(|(i, mut b)| {
                b.index = match b.index {
                    NumOrStr::Str(_) => NumOrStr::Str(i.to_string()),
                    NumOrStr::Num(_) => NumOrStr::Num(i.into()),
                };
                Component::Button(b)
            }));
            c
        });
    ("[a-z_]{1,20}", prop_oneof![Just("en_US"), Just("de"), Just("pt_BR")], opt(components), opt(Just("deterministic")))
        .prop_map(|(name, code, components, policy)| Template {
            name,
            language: Language { code: code.into(), policy: policy.map(Into::into) },
            components,
        })
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        (s(4096), opt(any::<bool>())).prop_map(|(body, preview_url)| Content::Text(Text { body, preview_url })),
        (media_source(), opt(s(1024))).prop_map(|((id, link), caption)| Content::Image(Image {
            id,
            link,
            caption,
            media_id: None
        })),
        (media_source(), opt(any::<bool>())).prop_map(|((id, link), voice)| Content::Audio(Audio {
            id,
            link,
            voice,
            media_id: None
        })),
        (media_source(), opt(s(64)), opt(s(64))).prop_map(|((id, link), caption, filename)| Content::Document(
            Document { id, link, caption, filename, media_id: None }
        )),
        media_source().prop_map(|(id, link)| Content::Sticker(Sticker { id, link, media_id: None })),
        (num_or_str(), num_or_str(), opt(s(40)), opt(s(80))).prop_map(|(latitude, longitude, name, address)| {
            Content::Location(Location { latitude, longitude, name, address })
        }),
        proptest::collection::vec((s(40), opt("\\+[0-9]{11}"), opt("[a-z]{3}@[a-z]{3}\\.com")), 1..4).prop_map(|cs| {
            Content::Contacts(
                cs.into_iter()
                    .map(|(formatted_name, phone, email)| Contact {
                        name: contacts::Name {
                            formatted_name,
                            first_name: None,
                            last_name: None,
                            middle_name: None,
                            suffix: None,
                            prefix: None,
                        },
                        addresses: None,
                        birthday: None,
                        emails: email.map(|email| vec![contacts::Email { email, kind: Some("WORK".into()) }]),
                        org: None,
                        phones: phone.map(|phone| vec![contacts::Phone { phone, kind: None, wa_id: None }]),
                        urls: None,
                    })
                    .collect(),
            )
        }),
        ("wamid\\.[A-Za-z0-9]{10}", prop_oneof![Just(String::new()), Just("😀".to_owned()), Just("👍🏽".to_owned())])
            .prop_map(|(message_id, emoji)| Content::Reaction(Reaction { message_id, emoji })),
        interactive_content().prop_map(|i| Content::Interactive(Box::new(i))),
        template_content().prop_map(|t| Content::Template(Box::new(t))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Serialising then parsing gives the same value, and Meta's JSON survives a round trip.
    #[test]
    fn the_model_round_trips(c in content()) {
        let kind = c.kind();
        let json = c.object();
        let back = Content::from_object(kind, &json).unwrap();
        prop_assert_eq!(&back, &c);
        prop_assert_eq!(back.object(), json);
        // Values generated within Meta's limits pass them.
        prop_assert!(c.validate().is_ok(), "{:?}", c.validate());
    }
}
