// Skein's JsSIP test page. The node driver (driver.js) calls the window.skein*
// functions through playwright; everything the UA does is reported through
// window.skeinEvent (bound by the driver with exposeBinding) and kept in
// window.skeinEvents, so the Python side sees every event as a JSON line.
'use strict';
window.skeinEvents = [];
function emit(type, data) {
  const ev = Object.assign({ type }, data || {});
  window.skeinEvents.push(ev);
  const el = document.getElementById('log');
  if (el) el.textContent += JSON.stringify(ev) + '\n';
  if (typeof window.skeinEvent === 'function') window.skeinEvent(ev);
}

function causeOf(e) {
  const r = e && e.response;
  return { cause: e && e.cause ? String(e.cause) : '',
           status: r ? r.status_code : 0, reason: r ? r.reason_phrase : '' };
}

// opts: { ws_url, uri, password, display, authorization_user, register_expires, debug }
window.skeinRegister = (opts) => {
  if (opts.debug) JsSIP.debug.enable('JsSIP:*'); else JsSIP.debug.disable();
  const socket = new JsSIP.WebSocketInterface(opts.ws_url);
  const cfg = { sockets: [socket], uri: opts.uri, password: opts.password,
                register: true, session_timers: false,
                register_expires: opts.register_expires || 600,
                connection_recovery_min_interval: 1, connection_recovery_max_interval: 4 };
  if (opts.display) cfg.display_name = opts.display;
  if (opts.authorization_user) cfg.authorization_user = opts.authorization_user;
  const ua = new JsSIP.UA(cfg);
  window.ua = ua;
  ua.on('connecting', () => emit('connecting', { url: opts.ws_url }));
  ua.on('connected', () => emit('connected', { url: opts.ws_url }));
  ua.on('disconnected', (e) => emit('disconnected', { error: !!(e && e.error), code: e && e.code,
                                                     reason: e && e.reason ? String(e.reason) : '' }));
  ua.on('registered', (e) => emit('registered', {
    status: e.response.status_code,
    contact: (e.response.getHeaders('contact') || []).join(', ') }));
  ua.on('unregistered', (e) => emit('unregistered', { status: e && e.response ? e.response.status_code : 0,
                                                     cause: e && e.cause ? String(e.cause) : '' }));
  ua.on('registrationFailed', (e) => emit('registrationFailed', causeOf(e)));
  ua.on('newMessage', (e) => {
    if (e.originator !== 'remote') return;
    const req = e.request;
    emit('message', { from: req.from.uri.toString(), from_display: req.from.display_name || '',
                      text: req.body || '', content_type: req.getHeader('content-type') || '',
                      ruri: req.ruri ? req.ruri.toString() : '', via: req.getHeader('via') || '' });
  });
  ua.start();
  return 'started';
};

// Resolves with { status } of the final response, or { failed: cause, status } - never hangs:
// JsSIP ends a MESSAGE transaction with 'failed' on timeout (Timer F, 32 s) or transport error.
window.skeinSendMessage = (target, text) => new Promise((resolve) => {
  window.ua.sendMessage(target, text, { contentType: 'text/plain', eventHandlers: {
    succeeded: (e) => { emit('messageSent', { target, text, status: e.response.status_code });
                        resolve({ status: e.response.status_code }); },
    failed: (e) => { const c = causeOf(e); emit('messageFailed', Object.assign({ target, text }, c));
                     resolve(Object.assign({ failed: c.cause }, c)); } } });
});

window.skeinUnregister = () => { window.ua.unregister({ all: false }); return 'unregistering'; };
window.skeinStop = () => { if (window.ua) window.ua.stop(); return 'stopping'; };
emit('page', { jssip: JsSIP.version || (JsSIP.C && JsSIP.C.version) || 'unknown' });
