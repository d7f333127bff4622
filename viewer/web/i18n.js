// Every text the live wall shows, in Czech and English. The language follows the browser
// (navigator.languages) until the dispatcher picks one with the CS/EN switch; that choice
// is remembered in localStorage so a shared workstation keeps it across shifts.

const STORAGE_KEY = "townwatch.lang";

const TEXTS = {
  en: {
    title: "Live wall",
    cameras: { one: "{n} camera", other: "{n} cameras" },
    liveCount: "{n} live",
    loading: "Loading cameras…",
    noCameras: "No cameras are configured.",
    serverDown: "Server unreachable – retrying",
    live: "Live",
    motion: "Motion",
    events: "Events",
    allCameras: "All cameras",
    camera: "Camera",
    ongoing: "going on",
    noEvents: "No motion events.",
    eventsFailed: "Events could not be loaded – retrying",
    connecting: "Connecting…",
    offline: "Camera unavailable",
    busy: "Too many viewers",
    busyHint: "The viewer limit is reached. Retrying by itself.",
    paused: "Paused",
    noVideo: "No picture",
    retryIn: "Retrying in {s} s",
    since: "since {t}",
    back: "Back to the wall",
    mainStream: "main stream",
    subStream: "sub stream",
    open: "Enlarge {name}",
    language: "Language",
    stateBackoff: "Connection lost",
    stateFailed: "Needs attention",
    stateStopped: "Stopped",
    user: "User",
    logout: "Log out",
    login: "Log in",
    loginTitle: "Log in to townwatch",
    username: "User name",
    password: "Password",
    loginFailed: "Wrong user name or password.",
    loginThrottled: "Too many attempts. Try again in {s} s.",
    loginError: "Login failed: {msg}",
    noLive: "Your role has no live view.",
    auditLink: "Access log",
    roles: { dispatcher: "dispatcher", officer: "officer", supervisor: "supervisor", auditor: "auditor", admin: "administrator" },
    auditTitle: "Access log",
    from: "From",
    to: "To",
    action: "Action",
    search: "Search",
    nextPage: "Next page",
    exportCSV: "Export CSV",
    verify: "Verify chain",
    verifyOK: "Chain intact: {n} rows, head {head}.",
    verifyBad: "Chain broken at row {id}: {reason}",
    time: "Time",
    actor: "Who",
    client: "Address",
    outcome: "Outcome",
    details: "Details",
    noRows: "No rows.",
    playbackTitle: "Playback",
    playbackLink: "Playback",
    backToWall: "Live wall",
    chooseCameras: "Choose 1 to 4 cameras",
    date: "Day",
    timeOfDay: "Time",
    reasonLabel: "Reason for viewing the recording",
    caseLabel: "Case reference (optional)",
    reasonNote: "The reason and the case reference are written to the access log with your name.",
    needReason: "Say why you view the recording.",
    startPlayback: "Play back",
    startFailed: "Playback refused: {msg}",
    play: "Play",
    pause: "Pause",
    stepBack: "One frame back",
    stepForward: "One frame forward",
    speed: "Speed",
    zoomIn: "Zoom in",
    zoomOut: "Zoom out",
    wholeDay: "24 h",
    noRecording: "No recording",
    deletedRecording: "Recording deleted",
    loadingVideo: "Loading…",
    playbackError: "The recording cannot be played",
    reasonAgain: "The server no longer knows why you view the recording (it was restarted). Give the reason again.",
    eventSearch: "Event search",
    zone: "Zone",
    minScore: "Minimum score (0–1)",
    snapshot: "Snapshot",
    start: "Start",
    end: "End",
    score: "Score",
    zones: "Zones",
    olderEvents: "Older events",
    searchFailed: "Search failed: {msg}",
    adminLink: "Cameras",
    adminTitle: "Cameras",
    cameraID: "ID",
    cameraName: "Name",
    liveState: "Stream",
    recordingState: "Recording",
    storedBytes: "Stored",
    notRunning: "not running",
    handWritten: "in townwatch.yaml (edit the file)",
    addCamera: "Add camera",
    editCamera: "Edit camera {id}",
    edit: "Edit",
    remove: "Remove",
    discovery: "Find on the network (ONVIF)",
    discover: "Search",
    searching: "Searching…",
    devicesFound: "{n} new camera(s) found, {added} already added.",
    useDevice: "Read its streams",
    transport: "Transport",
    probe: "Test stream",
    probing: "Testing the stream…",
    probeFailed: "Failed: {failure} {reason}",
    cameraLegend: "Camera",
    recordMode: "Recording",
    modeContinuous: "continuous",
    modeMotion: "on motion",
    modeOff: "off",
    retention: "Keep footage (e.g. 7d, 72h)",
    motionDetection: "Motion detection",
    zonesMasks: "Zones and masks",
    zonesHint: "Test the stream for a snapshot, start a zone or mask and click its corners on the picture (at least 3).",
    newZone: "New zone",
    newMask: "New mask",
    finishPolygon: "Finish polygon",
    zoneWord: "zone",
    maskWord: "mask",
    zoneName: "Zone name",
    maskName: "Mask name",
    pointsCount: { one: "{n} point", other: "{n} points" },
    delete: "Delete",
    passwordUnchanged: "unchanged (type to replace)",
    save: "Save",
    cancel: "Cancel",
    saved: "Camera {id} saved.",
    savedNotApplied: "Saved, but not applied: {err}",
    changedElsewhere: "Someone else changed the configuration of {id} meanwhile. The form now shows the current state; make your change again.",
    removeQuestion: "Remove camera {id} ({name})? It stops recording and leaves the live wall.",
    removeFootage: "Its recorded footage is not deleted: it stays playable until its retention period ends, and footage under an evidence lock stays as long as the lock.",
    removed: "Camera {id} removed.",
    disable: "Disable",
    enable: "Enable",
    disabledState: "disabled",
    disabledDone: "Camera {id} disabled: it does not run; its configuration and footage stay.",
    enabledDone: "Camera {id} enabled.",
  },
  cs: {
    title: "Živý přehled",
    cameras: { one: "{n} kamera", few: "{n} kamery", other: "{n} kamer" },
    liveCount: "{n} živě",
    loading: "Načítání kamer…",
    noCameras: "Nejsou nastavené žádné kamery.",
    serverDown: "Server je nedostupný – zkouším znovu",
    live: "Živě",
    motion: "Pohyb",
    events: "Události",
    allCameras: "Všechny kamery",
    camera: "Kamera",
    ongoing: "probíhá",
    noEvents: "Žádné události pohybu.",
    eventsFailed: "Události se nepodařilo načíst – zkouším znovu",
    connecting: "Připojování…",
    offline: "Kamera je nedostupná",
    busy: "Příliš mnoho diváků",
    busyHint: "Limit diváků je vyčerpán, připojení se zopakuje automaticky.",
    paused: "Pozastaveno",
    noVideo: "Bez obrazu",
    retryIn: "Nový pokus za {s} s",
    since: "od {t}",
    back: "Zpět na přehled",
    mainStream: "hlavní stream",
    subStream: "vedlejší stream",
    open: "Zvětšit {name}",
    language: "Jazyk",
    stateBackoff: "Spojení ztraceno",
    stateFailed: "Vyžaduje zásah",
    stateStopped: "Zastaveno",
    user: "Uživatel",
    logout: "Odhlásit",
    login: "Přihlásit",
    loginTitle: "Přihlášení do townwatch",
    username: "Uživatelské jméno",
    password: "Heslo",
    loginFailed: "Chybné jméno nebo heslo.",
    loginThrottled: "Příliš mnoho pokusů. Zkuste to znovu za {s} s.",
    loginError: "Přihlášení selhalo: {msg}",
    noLive: "Vaše role nemá živý obraz.",
    auditLink: "Záznam přístupů",
    roles: { dispatcher: "dispečer", officer: "strážník", supervisor: "velitel směny", auditor: "auditor", admin: "správce" },
    auditTitle: "Záznam přístupů",
    from: "Od",
    to: "Do",
    action: "Akce",
    search: "Hledat",
    nextPage: "Další stránka",
    exportCSV: "Export CSV",
    verify: "Ověřit řetězec",
    verifyOK: "Řetězec neporušen: {n} řádků, hlava {head}.",
    verifyBad: "Řetězec porušen u řádku {id}: {reason}",
    time: "Čas",
    actor: "Kdo",
    client: "Adresa",
    outcome: "Výsledek",
    details: "Podrobnosti",
    noRows: "Žádné záznamy.",
    playbackTitle: "Přehrávání záznamu",
    playbackLink: "Záznam",
    backToWall: "Živý přehled",
    chooseCameras: "Vyberte 1 až 4 kamery",
    date: "Den",
    timeOfDay: "Čas",
    reasonLabel: "Důvod nahlížení do záznamu",
    caseLabel: "Číslo jednací (nepovinné)",
    reasonNote: "Důvod a číslo jednací se zapíší do záznamu přístupů s vaším jménem.",
    needReason: "Uveďte, proč do záznamu nahlížíte.",
    startPlayback: "Přehrát",
    startFailed: "Přehrávání odmítnuto: {msg}",
    play: "Přehrát",
    pause: "Pozastavit",
    stepBack: "O snímek zpět",
    stepForward: "O snímek vpřed",
    speed: "Rychlost",
    zoomIn: "Přiblížit",
    zoomOut: "Oddálit",
    wholeDay: "24 h",
    noRecording: "Bez záznamu",
    deletedRecording: "Záznam smazán",
    loadingVideo: "Načítání…",
    playbackError: "Záznam nelze přehrát",
    reasonAgain: "Server už nezná důvod nahlížení do záznamu (byl restartován). Uveďte důvod znovu.",
    eventSearch: "Hledání událostí",
    zone: "Zóna",
    minScore: "Nejnižší skóre (0–1)",
    snapshot: "Snímek",
    start: "Začátek",
    end: "Konec",
    score: "Skóre",
    zones: "Zóny",
    olderEvents: "Starší události",
    searchFailed: "Hledání selhalo: {msg}",
    adminLink: "Kamery",
    adminTitle: "Kamery",
    cameraID: "ID",
    cameraName: "Název",
    liveState: "Stream",
    recordingState: "Nahrávání",
    storedBytes: "Uloženo",
    notRunning: "neběží",
    handWritten: "v townwatch.yaml (upravte soubor)",
    addCamera: "Přidat kameru",
    editCamera: "Upravit kameru {id}",
    edit: "Upravit",
    remove: "Odebrat",
    discovery: "Najít v síti (ONVIF)",
    discover: "Hledat",
    searching: "Hledám…",
    devicesFound: "Nalezeno nových kamer: {n}, již přidaných: {added}.",
    useDevice: "Načíst její streamy",
    transport: "Přenos",
    probe: "Vyzkoušet stream",
    probing: "Zkouším stream…",
    probeFailed: "Selhalo: {failure} {reason}",
    cameraLegend: "Kamera",
    recordMode: "Nahrávání",
    modeContinuous: "nepřetržitě",
    modeMotion: "při pohybu",
    modeOff: "vypnuto",
    retention: "Uchovávat záznam (např. 7d, 72h)",
    motionDetection: "Detekce pohybu",
    zonesMasks: "Zóny a masky",
    zonesHint: "Vyzkoušejte stream kvůli snímku, založte zónu nebo masku a klikněte do obrazu její rohy (alespoň 3).",
    newZone: "Nová zóna",
    newMask: "Nová maska",
    finishPolygon: "Uzavřít mnohoúhelník",
    zoneWord: "zóna",
    maskWord: "maska",
    zoneName: "Název zóny",
    maskName: "Název masky",
    pointsCount: { one: "{n} bod", few: "{n} body", other: "{n} bodů" },
    delete: "Smazat",
    passwordUnchanged: "beze změny (napište nové)",
    save: "Uložit",
    cancel: "Zrušit",
    saved: "Kamera {id} uložena.",
    savedNotApplied: "Uloženo, ale nepoužito: {err}",
    changedElsewhere: "Konfiguraci kamery {id} mezitím změnil někdo jiný. Formulář teď ukazuje aktuální stav; proveďte změnu znovu.",
    removeQuestion: "Odebrat kameru {id} ({name})? Přestane nahrávat a zmizí z živého přehledu.",
    removeFootage: "Nahraný záznam se nemaže: zůstává k přehrání do konce doby uchovávání a záznam pod důkazním zámkem zůstává, dokud zámek trvá.",
    removed: "Kamera {id} odebrána.",
    disable: "Vypnout",
    enable: "Zapnout",
    disabledState: "vypnuta",
    disabledDone: "Kamera {id} vypnuta: neběží; její nastavení i záznam zůstávají.",
    enabledDone: "Kamera {id} zapnuta.",
  },
};

export const LANGUAGES = Object.keys(TEXTS);

let current = pick();

// pick returns the remembered choice, else the first of the browser's languages we speak.
function pick() {
  let saved = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage can be disabled (private mode, policy); the browser's language still works.
  }
  if (saved in TEXTS) return saved;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base in TEXTS) return base;
  }
  return "en";
}

export function language() {
  return current;
}

// setLanguage switches, remembers the choice and tells the page to re-render its texts.
export function setLanguage(lang) {
  if (!(lang in TEXTS)) throw new Error(`unknown language ${lang}`);
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Not remembered, but the switch still applies to this page.
  }
  document.documentElement.lang = lang;
  document.dispatchEvent(new CustomEvent("townwatch:language", { detail: lang }));
}

// t returns the text for key with {name} placeholders filled from params. A key with plural
// forms takes its count from params.n (Intl.PluralRules knows Czech "few").
export function t(key, params = {}) {
  let text = TEXTS[current][key] ?? TEXTS.en[key] ?? key;
  if (typeof text === "object") {
    const form = new Intl.PluralRules(current).select(params.n ?? 0);
    text = text[form] ?? text.other;
  }
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

// roleName is a role's name in the current language.
export function roleName(role) {
  return (TEXTS[current].roles ?? TEXTS.en.roles)[role] ?? role;
}

// timeText formats a time of day the way the dispatcher's language writes it (24-hour).
export function timeText(date, withSeconds = false) {
  return new Intl.DateTimeFormat(current, {
    hour: "2-digit",
    minute: "2-digit",
    second: withSeconds ? "2-digit" : undefined,
    hourCycle: "h23",
  }).format(date);
}

// dateTimeText is the date and the time of day with seconds, as the language writes them.
export function dateTimeText(date) {
  return `${date.toLocaleDateString(current)} ${timeText(date, true)}`;
}

// applyTexts fills every element that has data-i18n="key" (textContent) or
// data-i18n-label="key" (aria-label) under root.
export function applyTexts(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  document.documentElement.lang = current;
}
