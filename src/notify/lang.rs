//! LANG: the languages notices about set-aside mail are written in, and the
//! one table of their texts. A notice answers the sender in the language
//! their mail declared (`Content-Language`, else `Accept-Language`, see
//! [`crate::parse::Parsed::language`]) when it is one of [`Lang`]; otherwise
//! in English. Ticket mails and the alias confirmation stay English.
//!
//! Texts hold placeholders filled by [`fill`]: `{subject}`, `{address}`,
//! `{tag}`, `{allowed}`, `{max_size}`, `{sales}`. Tags, links and addresses
//! are never translated.

use super::templates::{Kind, Mail};

/// A language notices are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    De,
    Fr,
    Es,
    Nl,
    It,
    Pt,
}

impl Lang {
    /// The language of a primary subtag such as `de` (any case); English for
    /// none or one we have no texts for.
    pub fn of(primary: Option<&str>) -> Lang {
        match primary.map(str::to_ascii_lowercase).as_deref() {
            Some("de") => Lang::De,
            Some("fr") => Lang::Fr,
            Some("es") => Lang::Es,
            Some("nl") => Lang::Nl,
            Some("it") => Lang::It,
            Some("pt") => Lang::Pt,
            _ => Lang::En,
        }
    }

    /// The BCP 47 tag, for the HTML part's `lang`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
            Lang::Nl => "nl",
            Lang::It => "it",
            Lang::Pt => "pt",
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::De => &DE,
            Lang::Fr => &FR,
            Lang::Es => &ES,
            Lang::Nl => &NL,
            Lang::It => &IT,
            Lang::Pt => &PT,
        }
    }
}

/// One notice: its subject line (followed by the answered subject) and its
/// two paragraphs.
#[derive(Debug)]
pub struct Text {
    pub subject: &'static str,
    pub intro: &'static str,
    pub reply: &'static str,
}

/// Everything a notice says, in one language.
#[derive(Debug)]
pub struct Texts {
    /// Followed by the recipient's name, when known, and a comma.
    pub hello: &'static str,
    pub automatic: &'static str,
    pub unknown_sender: Text,
    /// Appended to `unknown_sender.intro` when a sales contact is configured.
    pub not_a_customer: &'static str,
    pub dmarc: Text,
    pub token_mismatch: Text,
    pub staff_without_ticket: Text,
    pub staff_unverified: Text,
    pub refused: Text,
    /// Appended to `refused.intro` when the allowed types are known.
    pub refused_allowed: &'static str,
    pub refused_files: &'static str,
    pub open_ticket: &'static str,
}

/// The localized lines a notice template shows.
#[derive(Debug, Clone, Default)]
pub struct Said {
    pub lang: &'static str,
    pub hello: String,
    pub intro: String,
    pub reply: String,
    pub files_title: String,
    pub link_label: String,
    pub automatic: String,
}

impl Texts {
    /// The texts of a notice about set-aside mail; `None` for other mail.
    pub fn of(&self, kind: Kind) -> Option<&Text> {
        match kind {
            Kind::NoticeUnknownSender => Some(&self.unknown_sender),
            Kind::NoticeDmarc => Some(&self.dmarc),
            Kind::NoticeTokenMismatch => Some(&self.token_mismatch),
            Kind::NoticeStaffWithoutTicket => Some(&self.staff_without_ticket),
            Kind::NoticeStaffUnverified => Some(&self.staff_unverified),
            Kind::NoticeRefused => Some(&self.refused),
            _ => None,
        }
    }
}

/// What the notice `kind` says to `m`'s recipient in `lang` (empty for mail
/// that is no such notice).
pub fn said(kind: Kind, lang: Lang, m: &Mail) -> Said {
    let texts = lang.texts();
    let Some(text) = texts.of(kind) else { return Said::default() };
    let mut intro = fill(text.intro, m);
    let extra = match kind {
        Kind::NoticeUnknownSender if !m.sales_contact.is_empty() => texts.not_a_customer,
        Kind::NoticeRefused if !m.allowed.is_empty() => texts.refused_allowed,
        _ => "",
    };
    if !extra.is_empty() {
        intro.push(' ');
        intro.push_str(&fill(extra, m));
    }
    Said {
        lang: lang.tag(),
        hello: texts.hello.to_string(),
        intro,
        reply: fill(text.reply, m),
        files_title: texts.refused_files.to_string(),
        link_label: texts.open_ticket.to_string(),
        automatic: texts.automatic.to_string(),
    }
}

/// `text` with its placeholders replaced by the values `m` holds, in one pass
/// (a subject that contains `{address}` stays as written).
pub fn fill(text: &str, m: &Mail) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find('}') else { break };
        let value = match &after[1..end] {
            "subject" => Some(&m.subject),
            "address" => Some(&m.address),
            "tag" => Some(&m.tag),
            "allowed" => Some(&m.allowed),
            "max_size" => Some(&m.max_size),
            "sales" => Some(&m.sales_contact),
            _ => None,
        };
        match value {
            Some(v) => out.push_str(v),
            None => out.push_str(&after[..=end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

static EN: Texts = Texts {
    hello: "Hello",
    automatic: "This message was sent automatically.",
    unknown_sender: Text {
        subject: "No ticket was created:",
        intro: "We received your message “{subject}”, but your address {address} is not registered on our support portal, so no ticket was created. If you are a customer, please write from the address registered on the portal, or ask your administrator to add you.",
        reply: "This is an automatic reply; nothing you send to this address from {address} creates a ticket until the address is registered.",
    },
    not_a_customer: "Not a customer yet? Please contact {sales}.",
    dmarc: Text {
        subject: "Your message is held for review:",
        intro: "We received a message from {address} with the subject “{subject}”, but it failed the sender authentication check (DMARC) of its domain, so it was held for review and not posted. If you sent it, please ask your mail administrator to check the SPF and DKIM settings of your domain, or use the support portal.",
        reply: "This is an automatic reply. If you did not send that message, someone else used your address and you can ignore this email.",
    },
    token_mismatch: Text {
        subject: "Your message is held for review:",
        intro: "We received your message “{subject}” from {address}, but it was sent to the personal reply address of someone else, so it was held for review and not posted. Each person's notifications carry their own reply address.",
        reply: "To write on a ticket, reply to a notification that was sent to you, or use the support portal. Support staff can see the held message and post it for you.",
    },
    staff_without_ticket: Text {
        subject: "Your message was not posted:",
        intro: "We received your message “{subject}” from {address}, but it names no ticket, and staff mail does not open tickets, so it was held for review and not posted.",
        reply: "To answer a ticket by mail, reply to the notification we sent you about it. To post the held message, open the quarantine in the support portal and release it onto a ticket or as a new ticket for a team.",
    },
    staff_unverified: Text {
        subject: "Your message was not posted:",
        intro: "We received a message from {address} about ticket {tag} “{subject}”, but nothing proves that you sent it: it did not come to your personal reply address and no trusted sender authentication vouches for it. Staff mail acts only on such evidence, so it was held for review and not posted, and no command in it was carried out.",
        reply: "To answer a ticket by mail, reply to the notification we sent you about it: its reply address carries your personal token. If you did not send that message, someone else used your address; please tell your administrator.",
    },
    refused: Text {
        subject: "Attachments refused:",
        intro: "Your message on ticket {tag} “{subject}” was posted, but some of its attachments were refused and are not on the ticket.",
        reply: "To send the files, convert them to an allowed type and reply to this email with them attached: your reply is added to ticket {tag}.",
    },
    refused_allowed: "Accepted are {allowed} files of at most {max_size} each.",
    refused_files: "Refused attachments",
    open_ticket: "Open the ticket",
};

static DE: Texts = Texts {
    hello: "Hallo",
    automatic: "Diese Nachricht wurde automatisch versendet.",
    unknown_sender: Text {
        subject: "Es wurde kein Ticket erstellt:",
        intro: "Wir haben Ihre Nachricht „{subject}“ erhalten, aber Ihre Adresse {address} ist in unserem Support-Portal nicht registriert, daher wurde kein Ticket erstellt. Wenn Sie Kunde sind, schreiben Sie bitte von der im Portal registrierten Adresse oder bitten Sie Ihren Administrator, Sie hinzuzufügen.",
        reply: "Dies ist eine automatische Antwort; solange die Adresse {address} nicht registriert ist, wird aus Nachrichten von ihr kein Ticket erstellt.",
    },
    not_a_customer: "Noch kein Kunde? Bitte wenden Sie sich an {sales}.",
    dmarc: Text {
        subject: "Ihre Nachricht wird zur Prüfung zurückgehalten:",
        intro: "Wir haben eine Nachricht von {address} mit dem Betreff „{subject}“ erhalten, aber sie hat die Absenderprüfung (DMARC) ihrer Domain nicht bestanden. Deshalb wurde sie zur Prüfung zurückgehalten und nicht veröffentlicht. Wenn Sie sie gesendet haben, bitten Sie Ihren Mail-Administrator, die SPF- und DKIM-Einstellungen Ihrer Domain zu prüfen, oder nutzen Sie das Support-Portal.",
        reply: "Dies ist eine automatische Antwort. Wenn Sie diese Nachricht nicht gesendet haben, hat jemand anderes Ihre Adresse verwendet, und Sie können diese E-Mail ignorieren.",
    },
    token_mismatch: Text {
        subject: "Ihre Nachricht wird zur Prüfung zurückgehalten:",
        intro: "Wir haben Ihre Nachricht „{subject}“ von {address} erhalten, aber sie wurde an die persönliche Antwortadresse einer anderen Person gesendet. Deshalb wurde sie zur Prüfung zurückgehalten und nicht veröffentlicht. Die Benachrichtigungen jeder Person tragen ihre eigene Antwortadresse.",
        reply: "Um auf ein Ticket zu schreiben, antworten Sie auf eine Benachrichtigung, die an Sie gesendet wurde, oder nutzen Sie das Support-Portal. Das Support-Team sieht die zurückgehaltene Nachricht und kann sie für Sie veröffentlichen.",
    },
    staff_without_ticket: Text {
        subject: "Ihre Nachricht wurde nicht veröffentlicht:",
        intro: "Wir haben Ihre Nachricht „{subject}“ von {address} erhalten, aber sie nennt kein Ticket, und Mails von Mitarbeitern eröffnen keine Tickets. Deshalb wurde sie zur Prüfung zurückgehalten und nicht veröffentlicht.",
        reply: "Um per Mail auf ein Ticket zu antworten, antworten Sie auf die Benachrichtigung, die wir Ihnen dazu gesendet haben. Um die zurückgehaltene Nachricht zu veröffentlichen, öffnen Sie die Quarantäne im Support-Portal und geben Sie sie für ein Ticket oder als neues Ticket für ein Team frei.",
    },
    staff_unverified: Text {
        subject: "Ihre Nachricht wurde nicht veröffentlicht:",
        intro: "Wir haben eine Nachricht von {address} zu Ticket {tag} „{subject}“ erhalten, aber nichts belegt, dass Sie sie gesendet haben: Sie kam nicht an Ihre persönliche Antwortadresse, und keine vertrauenswürdige Absenderprüfung bestätigt sie. Mails von Mitarbeitern werden nur mit einem solchen Nachweis verarbeitet; deshalb wurde sie zur Prüfung zurückgehalten und nicht veröffentlicht, und keiner der darin enthaltenen Befehle wurde ausgeführt.",
        reply: "Um per Mail auf ein Ticket zu antworten, antworten Sie auf die Benachrichtigung, die wir Ihnen dazu gesendet haben: Deren Antwortadresse enthält Ihr persönliches Token. Wenn Sie diese Nachricht nicht gesendet haben, hat jemand anderes Ihre Adresse verwendet; bitte informieren Sie Ihren Administrator.",
    },
    refused: Text {
        subject: "Anhänge abgelehnt:",
        intro: "Ihre Nachricht zu Ticket {tag} „{subject}“ wurde veröffentlicht, aber einige ihrer Anhänge wurden abgelehnt und sind nicht im Ticket.",
        reply: "Um die Dateien zu senden, wandeln Sie sie in einen erlaubten Typ um und antworten Sie mit ihnen im Anhang auf diese E-Mail: Ihre Antwort wird zu Ticket {tag} hinzugefügt.",
    },
    refused_allowed: "Erlaubt sind Dateien vom Typ {allowed} mit jeweils höchstens {max_size}.",
    refused_files: "Abgelehnte Anhänge",
    open_ticket: "Ticket öffnen",
};

static FR: Texts = Texts {
    hello: "Bonjour",
    automatic: "Ce message a été envoyé automatiquement.",
    unknown_sender: Text {
        subject: "Aucun ticket n'a été créé :",
        intro: "Nous avons reçu votre message « {subject} », mais votre adresse {address} n'est pas enregistrée sur notre portail d'assistance, donc aucun ticket n'a été créé. Si vous êtes client, veuillez écrire depuis l'adresse enregistrée sur le portail ou demander à votre administrateur de vous ajouter.",
        reply: "Ceci est une réponse automatique ; tant que l'adresse {address} n'est pas enregistrée, rien de ce que vous envoyez depuis celle-ci ne crée de ticket.",
    },
    not_a_customer: "Vous n'êtes pas encore client ? Contactez {sales}.",
    dmarc: Text {
        subject: "Votre message est retenu pour vérification :",
        intro: "Nous avons reçu un message de {address} ayant pour objet « {subject} », mais il a échoué au contrôle d'authentification de l'expéditeur (DMARC) de son domaine ; il a donc été retenu pour vérification et n'a pas été publié. Si vous l'avez envoyé, demandez à votre administrateur de messagerie de vérifier les réglages SPF et DKIM de votre domaine, ou utilisez le portail d'assistance.",
        reply: "Ceci est une réponse automatique. Si vous n'avez pas envoyé ce message, quelqu'un d'autre a utilisé votre adresse et vous pouvez ignorer cet e-mail.",
    },
    token_mismatch: Text {
        subject: "Votre message est retenu pour vérification :",
        intro: "Nous avons reçu votre message « {subject} » de {address}, mais il a été envoyé à l'adresse de réponse personnelle de quelqu'un d'autre ; il a donc été retenu pour vérification et n'a pas été publié. Les notifications de chaque personne portent sa propre adresse de réponse.",
        reply: "Pour écrire sur un ticket, répondez à une notification qui vous a été envoyée, ou utilisez le portail d'assistance. L'équipe d'assistance voit le message retenu et peut le publier pour vous.",
    },
    staff_without_ticket: Text {
        subject: "Votre message n'a pas été publié :",
        intro: "Nous avons reçu votre message « {subject} » de {address}, mais il ne mentionne aucun ticket, et les e-mails de l'équipe n'ouvrent pas de tickets ; il a donc été retenu pour vérification et n'a pas été publié.",
        reply: "Pour répondre à un ticket par e-mail, répondez à la notification que nous vous avons envoyée à son sujet. Pour publier le message retenu, ouvrez la quarantaine dans le portail d'assistance et libérez-le sur un ticket ou comme nouveau ticket pour une équipe.",
    },
    staff_unverified: Text {
        subject: "Votre message n'a pas été publié :",
        intro: "Nous avons reçu un message de {address} concernant le ticket {tag} « {subject} », mais rien ne prouve que vous l'avez envoyé : il n'est pas arrivé à votre adresse de réponse personnelle et aucune authentification fiable de l'expéditeur ne le confirme. Les e-mails de l'équipe n'agissent qu'avec une telle preuve ; il a donc été retenu pour vérification, n'a pas été publié et aucune commande qu'il contient n'a été exécutée.",
        reply: "Pour répondre à un ticket par e-mail, répondez à la notification que nous vous avons envoyée à son sujet : son adresse de réponse contient votre jeton personnel. Si vous n'avez pas envoyé ce message, quelqu'un d'autre a utilisé votre adresse ; veuillez en informer votre administrateur.",
    },
    refused: Text {
        subject: "Pièces jointes refusées :",
        intro: "Votre message sur le ticket {tag} « {subject} » a été publié, mais certaines de ses pièces jointes ont été refusées et ne figurent pas sur le ticket.",
        reply: "Pour envoyer les fichiers, convertissez-les dans un type autorisé et répondez à cet e-mail en les joignant : votre réponse est ajoutée au ticket {tag}.",
    },
    refused_allowed: "Les fichiers acceptés sont de type {allowed}, de {max_size} au plus chacun.",
    refused_files: "Pièces jointes refusées",
    open_ticket: "Ouvrir le ticket",
};

static ES: Texts = Texts {
    hello: "Hola",
    automatic: "Este mensaje se ha enviado automáticamente.",
    unknown_sender: Text {
        subject: "No se ha creado ningún ticket:",
        intro: "Hemos recibido su mensaje «{subject}», pero su dirección {address} no está registrada en nuestro portal de soporte, por lo que no se ha creado ningún ticket. Si es cliente, escriba desde la dirección registrada en el portal o pida a su administrador que le añada.",
        reply: "Esta es una respuesta automática; mientras la dirección {address} no esté registrada, nada de lo que envíe desde ella creará un ticket.",
    },
    not_a_customer: "¿Aún no es cliente? Póngase en contacto con {sales}.",
    dmarc: Text {
        subject: "Su mensaje está retenido para revisión:",
        intro: "Hemos recibido un mensaje de {address} con el asunto «{subject}», pero no superó la comprobación de autenticación del remitente (DMARC) de su dominio, por lo que se ha retenido para revisión y no se ha publicado. Si lo envió usted, pida a su administrador de correo que revise la configuración SPF y DKIM de su dominio, o utilice el portal de soporte.",
        reply: "Esta es una respuesta automática. Si no envió ese mensaje, otra persona ha usado su dirección y puede ignorar este correo.",
    },
    token_mismatch: Text {
        subject: "Su mensaje está retenido para revisión:",
        intro: "Hemos recibido su mensaje «{subject}» de {address}, pero se envió a la dirección de respuesta personal de otra persona, por lo que se ha retenido para revisión y no se ha publicado. Las notificaciones de cada persona llevan su propia dirección de respuesta.",
        reply: "Para escribir en un ticket, responda a una notificación que se le haya enviado a usted o utilice el portal de soporte. El equipo de soporte puede ver el mensaje retenido y publicarlo por usted.",
    },
    staff_without_ticket: Text {
        subject: "Su mensaje no se ha publicado:",
        intro: "Hemos recibido su mensaje «{subject}» de {address}, pero no menciona ningún ticket, y el correo del personal no abre tickets, por lo que se ha retenido para revisión y no se ha publicado.",
        reply: "Para responder a un ticket por correo, responda a la notificación que le enviamos sobre él. Para publicar el mensaje retenido, abra la cuarentena en el portal de soporte y libérelo en un ticket o como ticket nuevo para un equipo.",
    },
    staff_unverified: Text {
        subject: "Su mensaje no se ha publicado:",
        intro: "Hemos recibido un mensaje de {address} sobre el ticket {tag} «{subject}», pero nada demuestra que lo haya enviado usted: no llegó a su dirección de respuesta personal y ninguna autenticación de remitente de confianza lo avala. El correo del personal solo actúa con esa prueba, por lo que se ha retenido para revisión, no se ha publicado y no se ha ejecutado ningún comando que contuviera.",
        reply: "Para responder a un ticket por correo, responda a la notificación que le enviamos sobre él: su dirección de respuesta lleva su token personal. Si no envió ese mensaje, otra persona ha usado su dirección; informe a su administrador.",
    },
    refused: Text {
        subject: "Archivos adjuntos rechazados:",
        intro: "Su mensaje en el ticket {tag} «{subject}» se ha publicado, pero algunos de sus archivos adjuntos se han rechazado y no están en el ticket.",
        reply: "Para enviar los archivos, conviértalos a un tipo permitido y responda a este correo con ellos adjuntos: su respuesta se añade al ticket {tag}.",
    },
    refused_allowed: "Se aceptan archivos {allowed} de {max_size} como máximo cada uno.",
    refused_files: "Archivos adjuntos rechazados",
    open_ticket: "Abrir el ticket",
};

static NL: Texts = Texts {
    hello: "Hallo",
    automatic: "Dit bericht is automatisch verzonden.",
    unknown_sender: Text {
        subject: "Er is geen ticket aangemaakt:",
        intro: "We hebben uw bericht ‘{subject}’ ontvangen, maar uw adres {address} is niet geregistreerd op ons supportportaal, dus er is geen ticket aangemaakt. Bent u klant, schrijf dan vanaf het adres dat op het portaal is geregistreerd, of vraag uw beheerder u toe te voegen.",
        reply: "Dit is een automatisch antwoord; zolang het adres {address} niet geregistreerd is, maakt niets wat u ervandaan stuurt een ticket aan.",
    },
    not_a_customer: "Nog geen klant? Neem contact op met {sales}.",
    dmarc: Text {
        subject: "Uw bericht wordt vastgehouden ter controle:",
        intro: "We hebben een bericht van {address} ontvangen met het onderwerp ‘{subject}’, maar het is niet door de afzendercontrole (DMARC) van het domein gekomen, dus het is vastgehouden ter controle en niet geplaatst. Hebt u het verstuurd, vraag dan uw mailbeheerder de SPF- en DKIM-instellingen van uw domein te controleren, of gebruik het supportportaal.",
        reply: "Dit is een automatisch antwoord. Hebt u dat bericht niet verstuurd, dan heeft iemand anders uw adres gebruikt en kunt u deze e-mail negeren.",
    },
    token_mismatch: Text {
        subject: "Uw bericht wordt vastgehouden ter controle:",
        intro: "We hebben uw bericht ‘{subject}’ van {address} ontvangen, maar het is verstuurd naar het persoonlijke antwoordadres van iemand anders, dus het is vastgehouden ter controle en niet geplaatst. De meldingen van iedere persoon hebben een eigen antwoordadres.",
        reply: "Om op een ticket te schrijven, beantwoordt u een melding die naar u is verstuurd, of gebruikt u het supportportaal. Het supportteam ziet het vastgehouden bericht en kan het voor u plaatsen.",
    },
    staff_without_ticket: Text {
        subject: "Uw bericht is niet geplaatst:",
        intro: "We hebben uw bericht ‘{subject}’ van {address} ontvangen, maar het noemt geen ticket, en mail van medewerkers opent geen tickets, dus het is vastgehouden ter controle en niet geplaatst.",
        reply: "Om per mail op een ticket te antwoorden, beantwoordt u de melding die we u erover stuurden. Om het vastgehouden bericht te plaatsen, opent u de quarantaine in het supportportaal en geeft u het vrij op een ticket of als nieuw ticket voor een team.",
    },
    staff_unverified: Text {
        subject: "Uw bericht is niet geplaatst:",
        intro: "We hebben een bericht van {address} ontvangen over ticket {tag} ‘{subject}’, maar niets bewijst dat u het hebt verstuurd: het kwam niet binnen op uw persoonlijke antwoordadres en geen vertrouwde afzendercontrole staat ervoor in. Mail van medewerkers werkt alleen met zo'n bewijs, dus het is vastgehouden ter controle en niet geplaatst, en geen opdracht erin is uitgevoerd.",
        reply: "Om per mail op een ticket te antwoorden, beantwoordt u de melding die we u erover stuurden: het antwoordadres daarvan bevat uw persoonlijke token. Hebt u dat bericht niet verstuurd, dan heeft iemand anders uw adres gebruikt; laat het uw beheerder weten.",
    },
    refused: Text {
        subject: "Bijlagen geweigerd:",
        intro: "Uw bericht op ticket {tag} ‘{subject}’ is geplaatst, maar sommige bijlagen zijn geweigerd en staan niet op het ticket.",
        reply: "Om de bestanden te sturen, zet u ze om naar een toegestaan type en beantwoordt u deze e-mail met de bestanden als bijlage: uw antwoord wordt toegevoegd aan ticket {tag}.",
    },
    refused_allowed: "Toegestaan zijn bestanden van het type {allowed}, elk hoogstens {max_size}.",
    refused_files: "Geweigerde bijlagen",
    open_ticket: "Ticket openen",
};

static IT: Texts = Texts {
    hello: "Salve",
    automatic: "Questo messaggio è stato inviato automaticamente.",
    unknown_sender: Text {
        subject: "Nessun ticket è stato creato:",
        intro: "Abbiamo ricevuto il suo messaggio «{subject}», ma il suo indirizzo {address} non è registrato sul nostro portale di assistenza, quindi non è stato creato alcun ticket. Se è un cliente, scriva dall'indirizzo registrato sul portale oppure chieda al suo amministratore di aggiungerla.",
        reply: "Questa è una risposta automatica; finché l'indirizzo {address} non è registrato, nulla di ciò che invia da esso crea un ticket.",
    },
    not_a_customer: "Non è ancora cliente? Contatti {sales}.",
    dmarc: Text {
        subject: "Il suo messaggio è trattenuto per verifica:",
        intro: "Abbiamo ricevuto un messaggio da {address} con oggetto «{subject}», ma non ha superato il controllo di autenticazione del mittente (DMARC) del suo dominio, quindi è stato trattenuto per verifica e non pubblicato. Se l'ha inviato lei, chieda al suo amministratore di posta di controllare le impostazioni SPF e DKIM del suo dominio, oppure usi il portale di assistenza.",
        reply: "Questa è una risposta automatica. Se non ha inviato quel messaggio, qualcun altro ha usato il suo indirizzo e può ignorare questa email.",
    },
    token_mismatch: Text {
        subject: "Il suo messaggio è trattenuto per verifica:",
        intro: "Abbiamo ricevuto il suo messaggio «{subject}» da {address}, ma è stato inviato all'indirizzo di risposta personale di un'altra persona, quindi è stato trattenuto per verifica e non pubblicato. Le notifiche di ciascuno riportano il proprio indirizzo di risposta.",
        reply: "Per scrivere su un ticket, risponda a una notifica inviata a lei oppure usi il portale di assistenza. Il team di assistenza vede il messaggio trattenuto e può pubblicarlo per lei.",
    },
    staff_without_ticket: Text {
        subject: "Il suo messaggio non è stato pubblicato:",
        intro: "Abbiamo ricevuto il suo messaggio «{subject}» da {address}, ma non indica alcun ticket, e la posta del personale non apre ticket, quindi è stato trattenuto per verifica e non pubblicato.",
        reply: "Per rispondere a un ticket via email, risponda alla notifica che le abbiamo inviato al riguardo. Per pubblicare il messaggio trattenuto, apra la quarantena nel portale di assistenza e lo rilasci su un ticket o come nuovo ticket per un team.",
    },
    staff_unverified: Text {
        subject: "Il suo messaggio non è stato pubblicato:",
        intro: "Abbiamo ricevuto un messaggio da {address} sul ticket {tag} «{subject}», ma nulla prova che l'abbia inviato lei: non è arrivato al suo indirizzo di risposta personale e nessuna autenticazione affidabile del mittente lo garantisce. La posta del personale ha effetto solo con una tale prova, quindi è stato trattenuto per verifica, non pubblicato, e nessun comando in esso è stato eseguito.",
        reply: "Per rispondere a un ticket via email, risponda alla notifica che le abbiamo inviato al riguardo: il suo indirizzo di risposta contiene il suo token personale. Se non ha inviato quel messaggio, qualcun altro ha usato il suo indirizzo; lo segnali al suo amministratore.",
    },
    refused: Text {
        subject: "Allegati rifiutati:",
        intro: "Il suo messaggio sul ticket {tag} «{subject}» è stato pubblicato, ma alcuni allegati sono stati rifiutati e non sono sul ticket.",
        reply: "Per inviare i file, li converta in un tipo consentito e risponda a questa email allegandoli: la sua risposta viene aggiunta al ticket {tag}.",
    },
    refused_allowed: "Sono accettati file {allowed} di al massimo {max_size} ciascuno.",
    refused_files: "Allegati rifiutati",
    open_ticket: "Apri il ticket",
};

static PT: Texts = Texts {
    hello: "Olá",
    automatic: "Esta mensagem foi enviada automaticamente.",
    unknown_sender: Text {
        subject: "Nenhum ticket foi criado:",
        intro: "Recebemos a sua mensagem “{subject}”, mas o seu endereço {address} não está registado no nosso portal de suporte, por isso nenhum ticket foi criado. Se é cliente, escreva a partir do endereço registado no portal ou peça ao seu administrador que o adicione.",
        reply: "Esta é uma resposta automática; enquanto o endereço {address} não estiver registado, nada do que enviar a partir dele cria um ticket.",
    },
    not_a_customer: "Ainda não é cliente? Contacte {sales}.",
    dmarc: Text {
        subject: "A sua mensagem está retida para revisão:",
        intro: "Recebemos uma mensagem de {address} com o assunto “{subject}”, mas falhou a verificação de autenticação do remetente (DMARC) do seu domínio, por isso foi retida para revisão e não foi publicada. Se a enviou, peça ao seu administrador de correio que verifique as definições SPF e DKIM do seu domínio, ou utilize o portal de suporte.",
        reply: "Esta é uma resposta automática. Se não enviou essa mensagem, outra pessoa usou o seu endereço e pode ignorar este email.",
    },
    token_mismatch: Text {
        subject: "A sua mensagem está retida para revisão:",
        intro: "Recebemos a sua mensagem “{subject}” de {address}, mas foi enviada para o endereço de resposta pessoal de outra pessoa, por isso foi retida para revisão e não foi publicada. As notificações de cada pessoa têm o seu próprio endereço de resposta.",
        reply: "Para escrever num ticket, responda a uma notificação que lhe foi enviada, ou utilize o portal de suporte. A equipa de suporte vê a mensagem retida e pode publicá-la por si.",
    },
    staff_without_ticket: Text {
        subject: "A sua mensagem não foi publicada:",
        intro: "Recebemos a sua mensagem “{subject}” de {address}, mas não indica nenhum ticket, e o correio da equipa não abre tickets, por isso foi retida para revisão e não foi publicada.",
        reply: "Para responder a um ticket por email, responda à notificação que lhe enviámos sobre ele. Para publicar a mensagem retida, abra a quarentena no portal de suporte e liberte-a num ticket ou como novo ticket para uma equipa.",
    },
    staff_unverified: Text {
        subject: "A sua mensagem não foi publicada:",
        intro: "Recebemos uma mensagem de {address} sobre o ticket {tag} “{subject}”, mas nada prova que foi enviada por si: não chegou ao seu endereço de resposta pessoal e nenhuma autenticação de remetente fiável a confirma. O correio da equipa só tem efeito com essa prova, por isso foi retida para revisão, não foi publicada e nenhum comando nela foi executado.",
        reply: "Para responder a um ticket por email, responda à notificação que lhe enviámos sobre ele: o endereço de resposta dela contém o seu token pessoal. Se não enviou essa mensagem, outra pessoa usou o seu endereço; informe o seu administrador.",
    },
    refused: Text {
        subject: "Anexos recusados:",
        intro: "A sua mensagem no ticket {tag} “{subject}” foi publicada, mas alguns dos anexos foram recusados e não estão no ticket.",
        reply: "Para enviar os ficheiros, converta-os para um tipo permitido e responda a este email com eles em anexo: a sua resposta é adicionada ao ticket {tag}.",
    },
    refused_allowed: "São aceites ficheiros {allowed} de no máximo {max_size} cada.",
    refused_files: "Anexos recusados",
    open_ticket: "Abrir o ticket",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::templates::render;

    const ALL: [Lang; 7] = [Lang::En, Lang::De, Lang::Fr, Lang::Es, Lang::Nl, Lang::It, Lang::Pt];

    fn mail() -> Mail {
        Mail {
            name: "Ana".into(),
            address: "ana@example.org".into(),
            subject: "Drucker {address}".into(),
            support_name: "Support".into(),
            ..Mail::default()
        }
    }

    /// Renders the unknown-sender notice in `lang`; returns its subject prefix, text and HTML.
    fn unknown_sender(lang: Lang) -> (&'static str, String, String) {
        let mut m = mail();
        m.said = said(Kind::NoticeUnknownSender, lang, &m);
        let (text, html) = render(Kind::NoticeUnknownSender, &m).unwrap();
        (lang.texts().unknown_sender.subject, text, html)
    }

    #[test]
    fn primary_subtags_pick_the_language_and_anything_else_is_english() {
        assert_eq!(Lang::of(Some("DE")), Lang::De);
        assert_eq!(Lang::of(Some("pt")), Lang::Pt);
        assert_eq!(Lang::of(Some("ja")), Lang::En);
        assert_eq!(Lang::of(None), Lang::En);
    }

    #[test]
    fn the_unknown_sender_notice_is_written_in_each_language() {
        let expected = [
            (Lang::En, "No ticket was created:", "Hello Ana,", "is not registered on our support portal"),
            (
                Lang::De,
                "Es wurde kein Ticket erstellt:",
                "Hallo Ana,",
                "ist in unserem Support-Portal nicht registriert",
            ),
            (Lang::Fr, "Aucun ticket n'a été créé :", "Bonjour Ana,", "pas enregistrée sur notre portail"),
            (Lang::Es, "No se ha creado ningún ticket:", "Hola Ana,", "no está registrada en nuestro portal"),
            (Lang::Nl, "Er is geen ticket aangemaakt:", "Hallo Ana,", "is niet geregistreerd op ons supportportaal"),
            (Lang::It, "Nessun ticket è stato creato:", "Salve Ana,", "non è registrato sul nostro portale"),
            (Lang::Pt, "Nenhum ticket foi criado:", "Olá Ana,", "não está registado no nosso portal"),
        ];
        assert_eq!(expected.len(), ALL.len());
        for (lang, subject, hello, sentence) in expected {
            let (prefix, text, html) = unknown_sender(lang);
            assert_eq!(prefix, subject, "{lang:?}");
            assert!(text.starts_with(hello), "{lang:?}: {text}");
            assert!(text.contains(sentence) && html.contains(sentence), "{lang:?}: {text}");
            assert!(text.contains("ana@example.org"), "{lang:?}: the address stays as it is");
            assert!(text.contains(lang.texts().automatic), "{lang:?}");
            assert!(html.contains(&format!("<html lang=\"{}\">", lang.tag())), "{lang:?}");
        }
    }

    #[test]
    fn every_notice_has_its_texts_in_every_language_with_the_same_placeholders() {
        let kinds = [
            Kind::NoticeUnknownSender,
            Kind::NoticeDmarc,
            Kind::NoticeTokenMismatch,
            Kind::NoticeStaffWithoutTicket,
            Kind::NoticeStaffUnverified,
            Kind::NoticeRefused,
        ];
        let holes = |s: &str| {
            let mut h: Vec<String> =
                s.split('{').skip(1).filter_map(|p| p.split_once('}')).map(|(n, _)| n.into()).collect();
            h.sort();
            h
        };
        for kind in kinds {
            let en = Lang::En.texts().of(kind).unwrap();
            for lang in ALL {
                let t = lang.texts().of(kind).unwrap();
                assert!(!t.subject.is_empty() && t.subject.ends_with(':'), "{lang:?} {kind:?}");
                assert_eq!(holes(t.intro), holes(en.intro), "{lang:?} {kind:?}");
                assert_eq!(holes(t.reply), holes(en.reply), "{lang:?} {kind:?}");
            }
        }
    }

    #[test]
    fn filling_is_one_pass_so_a_subject_cannot_pull_in_other_values() {
        let m = mail();
        assert_eq!(
            fill("“{subject}” from {address} {unknown}", &m),
            "“Drucker {address}” from ana@example.org {unknown}"
        );
    }
}
