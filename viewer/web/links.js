// Links into the player, shared by the wall's tiles, the events panel and the search page,
// so that every way to a recording opens the player the same way.

// PLAYBACK_PREROLL_MS: the player opened from the wall or an event starts this long
// before the moment asked for, so the officer sees what led up to it.
export const PLAYBACK_PREROLL_MS = 10000;

// playbackURL is the player at wall time w (epoch ms) of camera id.
export function playbackURL(id, w) {
  return `playback?${new URLSearchParams({ camera: id, t: new Date(w).toISOString() })}`;
}

// eventPlaybackURL is the player at an /api/events event, PLAYBACK_PREROLL_MS before it began.
export function eventPlaybackURL(e) {
  return playbackURL(e.camera, Date.parse(e.start) - PLAYBACK_PREROLL_MS);
}
