"""The browser dashboard (static ES modules + canvas, served at /) and the server-side visualization stream
(Pillow-rendered skeleton frames as MJPEG, HLS and an RTMP push through ffmpeg). ``DashboardPlugin`` adds
both to the app; see wdp.serve.dashboard.plugin."""
