#!/bin/sh
# Regenerates the simulated-camera clips. Run from anywhere:
#   sh ingest/simcam/clips/generate.sh
# The exact commands are repeated in README.md; keep the two in step, and keep
# MotionIntervals in ../clips.go in step with MOTION_X below.
set -eu
cd "$(dirname "$0")"

# Encoder settings shared by both clips (see README.md for why each is there).
ENCODE="-c:v libx264 -preset medium -profile:v baseline -level:v 3.0 -pix_fmt yuv420p -threads 1
 -b:v 300k -maxrate 400k -bufsize 800k
 -x264-params keyint=50:min-keyint=50:scenecut=0:bframes=0:open-gop=0:repeat-headers=1
 -bsf:v filter_units=remove_types=6 -f h264"

# A street: sky, three buildings, a road with lane marks.
STREET="color=c=0x9db8d0:s=640x360:r=25:d=60,
drawbox=x=0:y=230:w=640:h=130:c=0x505458:t=fill,
drawbox=x=20:y=70:w=150:h=160:c=0xb08060:t=fill,
drawbox=x=200:y=110:w=180:h=120:c=0xd8d0b0:t=fill,
drawbox=x=410:y=40:w=200:h=190:c=0x7a6a5a:t=fill,
drawbox=x=40:y=100:w=30:h=40:c=0x303848:t=fill,
drawbox=x=120:y=100:w=30:h=40:c=0x303848:t=fill,
drawbox=x=240:y=150:w=40:h=50:c=0x303848:t=fill,
drawbox=x=310:y=150:w=40:h=50:c=0x303848:t=fill,
drawbox=x=440:y=80:w=50:h=40:c=0x303848:t=fill,
drawbox=x=530:y=80:w=50:h=40:c=0x303848:t=fill,
drawbox=x=440:y=150:w=50:h=40:c=0x303848:t=fill,
drawbox=x=530:y=150:w=50:h=40:c=0x303848:t=fill,
drawbox=x=0:y=318:w=640:h=4:c=0xe0e0e0:t=fill"

# The car's left edge x as a function of the frame index k = round(t*25).
# Whole pixels per frame, so frame k differs from frame k-1 exactly when it
# lies in one of the motion intervals [10 s, 18 s), [30 s, 35 s) and
# [48 s, 55 s), i.e. k in 250..449, 750..874, 1200..1374. Parked at x=20;
# then right at 2 px/frame, right at 1 px/frame (hard to see on purpose),
# and back left at 3 px/frame, ending where it started, so the loop point
# itself shows no motion.
MOTION_X="20+2*clip(round(t*25)-249,0,200)+clip(round(t*25)-749,0,125)-3*clip(round(t*25)-1199,0,175)"

ffmpeg -y -v error -f lavfi -i "$STREET[bg];
color=c=0xf0c830:s=80x36:r=25:d=60[car];
[bg][car]overlay=x='$MOTION_X':y=268:eval=frame:format=yuv444,
noise=alls=6:allf=t,format=yuv420p" $ENCODE motion.h264

# A courtyard: wall, door, windows, lawn; nothing moves, only sensor noise.
ffmpeg -y -v error -f lavfi -i "color=c=0xc8c0a8:s=640x360:r=25:d=60,
drawbox=x=0:y=260:w=640:h=100:c=0x4f7a3a:t=fill,
drawbox=x=280:y=150:w=80:h=110:c=0x5a3a28:t=fill,
drawbox=x=60:y=60:w=120:h=80:c=0x3a4658:t=fill,
drawbox=x=460:y=60:w=120:h=80:c=0x3a4658:t=fill,
drawbox=x=0:y=0:w=640:h=24:c=0x8a3a2a:t=fill,
noise=alls=8:allf=t,format=yuv420p" $ENCODE static.h264
