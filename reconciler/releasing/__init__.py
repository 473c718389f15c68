"""releasing"""
