// Package web holds the live wall's browser files (index.html, ES modules, CSS), embedded
// into the binary so townwatch needs no Node, no build step and no files beside it. The
// viewer package serves them: index.html at "/", everything else under /static/.
//
// The modules, and what each owns:
//
//	app.js   the grid, its layout, polling /api/cameras, the enlarged view, the clock and
//	         the window.townwatch debug hook the browser tests use
//	tile.js  one camera: its WHEP session, state badge, reconnect backoff, stall watchdog
//	whep.js  the WHEP client (RTCPeerConnection, POST offer, DELETE on close)
//	i18n.js  every text in Czech and English and the language choice
//	session.js  who is logged in (/api/me), logout, and the way to the login page on 401
//	login.js the login page (login.html); setup.html is shown while no account exists
//	audit.js the auditor's access-log page (audit.html)
//	admin.js the administrator's camera page (admin.html); polygons.js the zones and masks
//	         drawn on a camera's snapshot
//	search.js    the event search page (search.html); links.js the links into the player
//	         that the tiles, the events panel and the search share
//	playback.js  the player (playback.html): start form with the reason, shared clock,
//	         controls; pbtile.js one camera's MSE pipeline; timeline.js the day timeline;
//	         scrub.js the scrub preview over the timeline (sprites loaded ahead, nearest
//	         first); mediaslots.js the page's budget of media requests in flight, which
//	         the tiles' fragments and the sprites share
package web

import "embed"

// Files are the embedded browser files, at the root of the FS (index.html, app.js, ...).
//
//go:embed *.html *.js *.css *.svg
var Files embed.FS
