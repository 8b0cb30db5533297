//! Victim SMS texts, by language and alert.
//!
//! Discreet: no names, no "offender", no address; the victim knows which order is meant. Every
//! danger message says what to do and gives the emergency number for the victim's country.
//! The offender's position appears only when the order allows it, and only through
//! [`render_for_order`], which checks.

use crate::fix::Fix;
use crate::order::{Language, ProtectionOrder};
use crate::policy::VictimAlert;
use crate::zone::ZoneKind;

/// The offender's position, for orders that allow telling the victim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionHint {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: f64,
}

/// What a template needs besides the language.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageContext<'a> {
    /// The kind of zone concerned.
    pub zone_kind: ZoneKind,
    /// Emergency number to call.
    pub emergency_number: &'a str,
    /// The offender's position, only when the order allows it.
    pub position: Option<PositionHint>,
}

fn near(lang: Language, kind: ZoneKind) -> &'static str {
    use Language::*;
    use ZoneKind::*;
    match (lang, kind) {
        (En, Home) => "near your home",
        (En, Work) => "near your workplace",
        (En, School) => "near the school",
        (En, Other) => "near a protected place",
        (En, VictimLocation) => "near you",
        (Es, Home) => "cerca de su domicilio",
        (Es, Work) => "cerca de su trabajo",
        (Es, School) => "cerca del colegio",
        (Es, Other) => "cerca de un lugar protegido",
        (Es, VictimLocation) => "cerca de usted",
        (Fr, Home) => "près de votre domicile",
        (Fr, Work) => "près de votre lieu de travail",
        (Fr, School) => "près de l'école",
        (Fr, Other) => "près d'un lieu protégé",
        (Fr, VictimLocation) => "près de vous",
        (De, Home) => "in der Nähe Ihrer Wohnung",
        (De, Work) => "in der Nähe Ihres Arbeitsplatzes",
        (De, School) => "in der Nähe der Schule",
        (De, Other) => "in der Nähe eines geschützten Ortes",
        (De, VictimLocation) => "in Ihrer Nähe",
    }
}

fn around(lang: Language, kind: ZoneKind) -> &'static str {
    use Language::*;
    use ZoneKind::*;
    match (lang, kind) {
        (En, Home) => "the protected area around your home",
        (En, Work) => "the protected area around your workplace",
        (En, School) => "the protected area around the school",
        (En, Other) => "a protected area",
        (En, VictimLocation) => "the protected area around you",
        (Es, Home) => "la zona protegida de su domicilio",
        (Es, Work) => "la zona protegida de su trabajo",
        (Es, School) => "la zona protegida del colegio",
        (Es, Other) => "una zona protegida",
        (Es, VictimLocation) => "la zona protegida a su alrededor",
        (Fr, Home) => "la zone protégée autour de votre domicile",
        (Fr, Work) => "la zone protégée autour de votre lieu de travail",
        (Fr, School) => "la zone protégée autour de l'école",
        (Fr, Other) => "une zone protégée",
        (Fr, VictimLocation) => "la zone protégée autour de vous",
        (De, Home) => "im Schutzbereich um Ihre Wohnung",
        (De, Work) => "im Schutzbereich um Ihren Arbeitsplatz",
        (De, School) => "im Schutzbereich um die Schule",
        (De, Other) => "in einem Schutzbereich",
        (De, VictimLocation) => "im Schutzbereich um Sie",
    }
}

/// The SMS text for an alert.
pub fn render(alert: VictimAlert, lang: Language, ctx: &MessageContext<'_>) -> String {
    use Language::*;
    use VictimAlert::*;
    let n = near(lang, ctx.zone_kind);
    let a = around(lang, ctx.zone_kind);
    let e = ctx.emergency_number;
    let mut text = match (lang, alert) {
        // Around her own device the zone moves with her: "very close to you", not a place.
        (En, Breach) if ctx.zone_kind == ZoneKind::VictimLocation => format!(
            "Vigil URGENT: the person named in your protection order is very close to you. Go to a safe place now and call {e}."
        ),
        (Es, Breach) if ctx.zone_kind == ZoneKind::VictimLocation => format!(
            "Vigil URGENTE: la persona de su orden de protección está muy cerca de usted. Vaya ahora a un lugar seguro y llame al {e}."
        ),
        (Fr, Breach) if ctx.zone_kind == ZoneKind::VictimLocation => format!(
            "Vigil URGENT : la personne visée par votre ordonnance de protection est tout près de vous. Mettez-vous en sécurité maintenant et appelez le {e}."
        ),
        (De, Breach) if ctx.zone_kind == ZoneKind::VictimLocation => format!(
            "Vigil DRINGEND: Die Person aus Ihrer Schutzanordnung ist ganz in Ihrer Nähe. Gehen Sie sofort an einen sicheren Ort und rufen Sie {e} an."
        ),
        (En, Warning) => format!(
            "Vigil: the person named in your protection order may be {n}. Stay alert and keep your phone with you. If you feel unsafe, go somewhere safe and call {e}."
        ),
        (En, Breach) => format!(
            "Vigil URGENT: the person named in your protection order is inside {a}. Go to a safe place now and call {e}."
        ),
        (En, AllClear) => format!(
            "Vigil: all clear. The person named in your protection order is no longer {n}. The monitoring centre is still watching."
        ),
        (En, TagSilent) => format!(
            "Vigil: we have lost contact with the tag of the person named in your protection order {n}. Stay alert; if you feel unsafe, call {e}."
        ),
        (En, ContactRestored) => format!(
            "Vigil: contact with the tag of the person named in your protection order is back. The monitoring centre is watching. If you feel unsafe, call {e}."
        ),
        (En, Tamper) => format!(
            "Vigil URGENT: the tag of the person named in your protection order may have been removed. Stay alert, go somewhere safe if you can, and call {e} if you see them."
        ),
        (Es, Warning) => format!(
            "Vigil: la persona de su orden de protección puede estar {n}. Esté alerta y lleve el teléfono encima. Si se siente en peligro, vaya a un lugar seguro y llame al {e}."
        ),
        (Es, Breach) => format!(
            "Vigil URGENTE: la persona de su orden de protección está dentro de {a}. Vaya ahora a un lugar seguro y llame al {e}."
        ),
        (Es, AllClear) => format!(
            "Vigil: fin del aviso. La persona de su orden de protección ya no está {n}. El centro de control sigue vigilando."
        ),
        (Es, TagSilent) => format!(
            "Vigil: hemos perdido la señal del dispositivo de la persona de su orden de protección {n}. Esté alerta; si se siente en peligro, llame al {e}."
        ),
        (Es, ContactRestored) => format!(
            "Vigil: hemos recuperado la señal del dispositivo de la persona de su orden de protección. El centro de control sigue vigilando. Si se siente en peligro, llame al {e}."
        ),
        (Es, Tamper) => format!(
            "Vigil URGENTE: el dispositivo de la persona de su orden de protección puede haber sido manipulado. Esté alerta, vaya a un lugar seguro si puede y llame al {e} si la ve."
        ),
        (Fr, Warning) => format!(
            "Vigil : la personne visée par votre ordonnance de protection est peut-être {n}. Restez vigilant(e) et gardez votre téléphone sur vous. En cas de danger, mettez-vous en sécurité et appelez le {e}."
        ),
        (Fr, Breach) => format!(
            "Vigil URGENT : la personne visée par votre ordonnance de protection est dans {a}. Mettez-vous en sécurité maintenant et appelez le {e}."
        ),
        (Fr, AllClear) => format!(
            "Vigil : fin d'alerte. La personne visée par votre ordonnance de protection n'est plus {n}. Le centre de surveillance reste attentif."
        ),
        (Fr, TagSilent) => format!(
            "Vigil : nous avons perdu le contact avec le bracelet de la personne visée par votre ordonnance de protection {n}. Restez vigilant(e) ; en cas de danger, appelez le {e}."
        ),
        (Fr, ContactRestored) => format!(
            "Vigil : le contact avec le bracelet de la personne visée par votre ordonnance de protection est rétabli. Le centre de surveillance veille. En cas de danger, appelez le {e}."
        ),
        (Fr, Tamper) => format!(
            "Vigil URGENT : le bracelet de la personne visée par votre ordonnance de protection a peut-être été retiré. Restez vigilant(e), mettez-vous en sécurité si possible et appelez le {e} si vous la voyez."
        ),
        (De, Warning) => format!(
            "Vigil: Die Person aus Ihrer Schutzanordnung ist möglicherweise {n}. Bleiben Sie aufmerksam und halten Sie Ihr Telefon bereit. Wenn Sie sich bedroht fühlen, gehen Sie an einen sicheren Ort und rufen Sie {e} an."
        ),
        (De, Breach) => format!(
            "Vigil DRINGEND: Die Person aus Ihrer Schutzanordnung ist {a}. Gehen Sie sofort an einen sicheren Ort und rufen Sie {e} an."
        ),
        (De, AllClear) => format!(
            "Vigil: Entwarnung. Die Person aus Ihrer Schutzanordnung ist nicht mehr {n}. Die Überwachungszentrale beobachtet weiter."
        ),
        (De, TagSilent) => format!(
            "Vigil: Die Verbindung zur Fußfessel der Person aus Ihrer Schutzanordnung {n} ist abgebrochen. Bleiben Sie aufmerksam; wenn Sie sich bedroht fühlen, rufen Sie {e} an."
        ),
        (De, ContactRestored) => format!(
            "Vigil: Die Verbindung zur Fußfessel der Person aus Ihrer Schutzanordnung besteht wieder. Die Leitstelle überwacht weiter. Wenn Sie sich bedroht fühlen, rufen Sie {e} an."
        ),
        (De, Tamper) => format!(
            "Vigil DRINGEND: Die Fußfessel der Person aus Ihrer Schutzanordnung wurde möglicherweise entfernt. Bleiben Sie aufmerksam, gehen Sie wenn möglich an einen sicheren Ort und rufen Sie {e} an, wenn Sie die Person sehen."
        ),
    };
    if let (Some(p), Warning | Breach) = (ctx.position, alert) {
        let label = match lang {
            En => "Last position",
            Es => "Última posición",
            Fr => "Dernière position",
            De => "Letzte Position",
        };
        text.push_str(&format!(
            " {label}: {:.5},{:.5} (±{:.0} m)",
            p.lat, p.lon, p.accuracy_m
        ));
    }
    text
}

/// The SMS text for an alert under `order`, with the offender's position from `fix` only when
/// the order allows it, and the emergency number of the victim's country.
pub fn render_for_order(
    alert: VictimAlert,
    order: &ProtectionOrder,
    zone_kind: ZoneKind,
    fix: Option<&Fix>,
) -> String {
    let position = fix
        .filter(|_| order.policy.reveal_offender_position)
        .map(|f| PositionHint {
            lat: f.lat,
            lon: f.lon,
            accuracy_m: f.accuracy_m,
        });
    let ctx = MessageContext {
        zone_kind,
        emergency_number: order.victim.phone.emergency_number(),
        position,
    };
    render(alert, order.victim.language, &ctx)
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENDED: &str = "^{}\\[~]|€\x0c";

/// How many SMS segments `text` takes: GSM-7 (160, or 153 per part) when every character is in
/// the GSM 03.38 alphabet, otherwise UCS-2 (70, or 67 per part).
pub fn sms_segments(text: &str) -> usize {
    let gsm_units: Option<usize> = text.chars().try_fold(0, |n, c| {
        if GSM7_BASIC.contains(c) {
            Some(n + 1)
        } else if GSM7_EXTENDED.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    });
    let (units, single, part) = match gsm_units {
        Some(u) => (u, 160, 153),
        None => (text.encode_utf16().count(), 70, 67),
    };
    if units <= single {
        1
    } else {
        units.div_ceil(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERTS: [VictimAlert; 6] = [
        VictimAlert::Warning,
        VictimAlert::Breach,
        VictimAlert::AllClear,
        VictimAlert::TagSilent,
        VictimAlert::Tamper,
        VictimAlert::ContactRestored,
    ];
    const KINDS: [ZoneKind; 5] = [
        ZoneKind::Home,
        ZoneKind::Work,
        ZoneKind::School,
        ZoneKind::Other,
        ZoneKind::VictimLocation,
    ];

    #[test]
    fn the_moving_zone_says_near_you_and_very_close_to_you() {
        let ctx = MessageContext {
            zone_kind: ZoneKind::VictimLocation,
            emergency_number: "999",
            position: None,
        };
        let warning = render(VictimAlert::Warning, Language::En, &ctx);
        assert!(warning.contains("may be near you"), "{warning}");
        let breach = render(VictimAlert::Breach, Language::En, &ctx);
        assert!(
            breach.contains("very close to you") && breach.contains("call 999"),
            "{breach}"
        );
        let clear = render(VictimAlert::AllClear, Language::En, &ctx);
        assert!(clear.contains("no longer near you"), "{clear}");
        for lang in Language::ALL {
            let fixed = MessageContext {
                zone_kind: ZoneKind::Home,
                ..ctx.clone()
            };
            assert_ne!(
                render(VictimAlert::Breach, lang, &ctx),
                render(VictimAlert::Breach, lang, &fixed)
            );
        }
    }

    #[test]
    fn every_template_renders_in_every_language() {
        for lang in Language::ALL {
            for alert in ALERTS {
                for kind in KINDS {
                    let ctx = MessageContext {
                        zone_kind: kind,
                        emergency_number: "999",
                        position: None,
                    };
                    let t = render(alert, lang, &ctx);
                    assert!(t.starts_with("Vigil"), "{t}");
                    if alert != VictimAlert::AllClear {
                        assert!(t.contains("999"), "{lang:?} {alert:?}: {t}");
                    }
                    assert!(
                        sms_segments(&t) <= 4,
                        "{lang:?} {alert:?} {kind:?}: {} segments: {t}",
                        sms_segments(&t)
                    );
                }
            }
        }
    }

    #[test]
    fn english_danger_messages_fit_in_two_gsm_segments() {
        for alert in ALERTS {
            let t = render(
                alert,
                Language::En,
                &MessageContext {
                    zone_kind: ZoneKind::Work,
                    emergency_number: "999",
                    position: None,
                },
            );
            assert!(sms_segments(&t) <= 2, "{alert:?}: {t}");
        }
    }

    #[test]
    fn position_only_when_the_order_allows() {
        let mut order: ProtectionOrder = serde_json::from_str(r#"{"order_id":"o","tag_id":"t","victim":{"victim_id":"v","phone":"+447700900123","language":"en"}}"#).unwrap();
        let fix = Fix {
            tag_id: order.tag_id.clone(),
            seq: 1,
            at_ms: 0,
            lat: 51.123456,
            lon: -0.654321,
            accuracy_m: 12.0,
            speed_mps: None,
            heading_deg: None,
            battery_pct: None,
        };
        let hidden = render_for_order(VictimAlert::Breach, &order, ZoneKind::Home, Some(&fix));
        assert!(
            !hidden.contains("51.1") && !hidden.contains("position"),
            "{hidden}"
        );
        assert!(hidden.contains("call 999"));
        order.policy.reveal_offender_position = true;
        let shown = render_for_order(VictimAlert::Breach, &order, ZoneKind::Home, Some(&fix));
        assert!(
            shown.ends_with("Last position: 51.12346,-0.65432 (±12 m)"),
            "{shown}"
        );
        assert!(
            !render_for_order(VictimAlert::AllClear, &order, ZoneKind::Home, Some(&fix))
                .contains("51.1")
        );
    }

    #[test]
    fn segment_counting() {
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        assert_eq!(sms_segments(&"a".repeat(306)), 2);
        assert_eq!(sms_segments(&"{".repeat(80)), 1);
        assert_eq!(sms_segments(&"{".repeat(81)), 2);
        assert_eq!(sms_segments(&"ó".repeat(70)), 1);
        assert_eq!(sms_segments(&"ó".repeat(71)), 2);
    }
}
