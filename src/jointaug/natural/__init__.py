"""Natural hand photos (11k Hands) as a source of two-hand masks (docs/natural.md).

hands11k (HandInfo.csv, filters), background (the paper's mask heuristic), openness
(finger count), labelstudio + rle + regions (joint labels), segdata + joints (the U-Net
segmenter; torch), layout (two-hand scene), standin + standin_folder (built-in photos),
check (montage of real photos), source (the end-to-end builder).
"""
