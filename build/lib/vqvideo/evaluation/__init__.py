"""`vqvideo eval`: the evaluation as one package (command, prediction-loop module, writer, records, report).
Start at command.py; the pure math it calls (frame quality, x264, FVD and its protocol steps) is in vqvideo/metrics/.
"""
