#!/usr/bin/env bash
# Build data_2d/ and data_3d/ (docs/data.md, "Record sets") from the official archives.
#
# Lay the unpacked archives out under RAW (default ./raw) like this:
#   RAW/300W/lfpw/trainset/*.png + *.pts      (300-W LFPW train)
#   RAW/300W/helen/trainset/*.jpg + *.pts     (300-W HELEN train)
#   RAW/300W/afw/*.jpg + *.pts                (300-W AFW)
#   RAW/300W/ibug/*.jpg + *.pts               (IBUG, 135 images)
#   RAW/300W-test/01_Indoor/*.png + *.pts     (300-W test, 300 images)
#   RAW/300W-test/02_Outdoor/*.png + *.pts    (300-W test, 300 images)
#   RAW/COFW/COFW_test_color.mat              (COFW test images, variable IsT)
#   RAW/COFW/test_annotations/{i}_points.mat  (COFW-68 re-annotation, 507 files)
#   RAW/300W_LP/{AFW,HELEN,IBUG,LFPW}/*.jpg + RAW/300W_LP/landmarks/SUBSET/NAME_pts.mat (3D train)
#   RAW/AFLW2000/*.jpg + *.mat                (AFLW2000-3D, pt3d_68)
# .pts coordinates are 1-based (300-W convention) and 1 is subtracted.
set -euo pipefail
RAW=${RAW:-./raw}
PY=${PY:-.venv/bin/python}
$PY -m data.build --format pts --input "$RAW/300W/lfpw/trainset" "$RAW/300W/helen/trainset" \
    "$RAW/300W/afw" --out data_2d/train
$PY -m data.build --format pts --input "$RAW/300W/ibug" --out data_2d/ibug
$PY -m data.build --format pts --input "$RAW/300W-test/01_Indoor" "$RAW/300W-test/02_Outdoor" \
    --out data_2d/300W
$PY -m data.build --format cofw --input "$RAW/COFW/COFW_test_color.mat" \
    --cofw-points "$RAW/COFW/test_annotations" --out data_2d/cofw_testset
$PY -m data.build --format 300w-lp --input "$RAW/300W_LP" --out data_3d/train
$PY -m data.build --format aflw2000 --input "$RAW/AFLW2000" --out data_3d/AFLW2000-3D
